"""A Django project serving a real OAuth 2.0 / OpenID Connect authorization server.

Built on django-oauth-toolkit. Run only as a subprocess by ``tests.support.idp``
(``python -m tests.support.idp_project.serve``); never imported by the test process.
"""
