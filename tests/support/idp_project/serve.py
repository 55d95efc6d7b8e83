"""Entry point of the IdP subprocess: bind, configure, migrate, serve.

    python -m tests.support.idp_project.serve

Started by tests.support.idp.start_idp(); see settings.py for the environment it reads.
"""

from __future__ import annotations

import os


def main() -> None:
    from tests.support import _child

    _child.exit_with_parent()
    sock = _child.bind_loopback()
    port = sock.getsockname()[1]
    # The port must be known before Django reads its settings (issuer URL).
    os.environ["IDP_BASE_URL"] = f"http://127.0.0.1:{port}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.support.idp_project.settings"

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)

    from django.core.asgi import get_asgi_application

    app = get_asgi_application()
    _child.announce_port(port)
    _child.serve_asgi(app, sock)


if __name__ == "__main__":
    main()
