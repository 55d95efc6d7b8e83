"""The notification channels' adapters: SMTP (stdlib ``smtplib``) and webhook calls
(httpx), below the services like ``forwarding``. The services name neither library:
they receive these through the ports of ``services.notifications``.

This module imports nothing, so that the services may use ``notify.errors`` and
``notify.addresses`` without pulling an HTTP client in.
"""
