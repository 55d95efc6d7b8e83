"""Settings of the test IdP. Everything instance-specific comes from the environment.

IDP_DATA_DIR      directory of the SQLite database (one per IdP instance)
IDP_BASE_URL      http://127.0.0.1:<port>, known once serve.py has bound its socket
IDP_CONTROL_TOKEN secret that guards the /_test/ control endpoints
IDP_ACCESS_TOKEN_LIFETIME  initial access-token lifetime in seconds (default 3600)
IDP_EXTRA_SCOPES  space-separated scopes accepted on top of the built-in ones
IDP_DEVICE_INTERVAL  initial polling interval (seconds) of the device flow (default 1)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import django
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import runtime

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ["IDP_DATA_DIR"])
BASE_URL = os.environ["IDP_BASE_URL"].rstrip("/")
CONTROL_TOKEN = os.environ["IDP_CONTROL_TOKEN"]

SECRET_KEY = secrets.token_urlsafe(48)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ROOT_URLCONF = "tests.support.idp_project.urls"
USE_TZ = True
STATIC_URL = "/static/"  # DOT's base template uses {% static %}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
]

MIDDLEWARE = [
    "tests.support.idp_project.middleware.CountRequestsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,  # DOT's consent page: oauth2_provider/authorize.html
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]

_sqlite_options: dict[str, object] = {"timeout": 30}
if django.VERSION >= (5, 1):
    # Concurrent token requests write to SQLite from many threads. WAL lets readers
    # run beside the writer; IMMEDIATE transactions take the write lock up front, so
    # two transactions never deadlock upgrading a read lock (instant "database is
    # locked"); they queue on the busy timeout instead.
    _sqlite_options.update(
        transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
    )
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DATA_DIR / "idp.sqlite3"),
        "OPTIONS": _sqlite_options,
    }
}

# Signed-cookie sessions keep the login flow off the database.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
LOGIN_URL = "/accounts/login/"
PASSWORD_HASHERS = ["tests.support.idp_project.hashers.FastPBKDF2PasswordHasher"]


def _rsa_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


_SCOPES = {
    "read": "Read scope",
    "write": "Write scope",
    "introspection": "Introspect tokens",
    "openid": "OpenID Connect",
    "profile": "Profile",
    "email": "Email",
    "offline_access": "Offline access",
}
for _scope in os.environ.get("IDP_EXTRA_SCOPES", "").split():
    _SCOPES.setdefault(_scope, _scope)

OAUTH2_PROVIDER = {
    "SCOPES": _SCOPES,
    # Without an explicit scope a token gets read+write, never "openid" by surprise.
    "DEFAULT_SCOPES": ["read", "write"],
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": _rsa_private_key_pem(),
    # A fixed issuer: identical in both discovery documents and in ID tokens, even
    # when a test reaches the IdP through a relay with another Host.
    "OIDC_ISS_ENDPOINT": BASE_URL,
    "PKCE_REQUIRED": True,
    # DOT 4.0 plans to flip this RFC 9700 gate to True (refusing the password grant),
    # which the tests need. Older DOT versions ignore the unknown key.
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": False,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "ACCESS_TOKEN_EXPIRE_SECONDS": runtime.access_token_lifetime(),
    # A callable lifetime, read on every issue, so /_test/settings can change it live.
    # (A plain int would be frozen into the oauthlib server built on first use.)
    "EXTRA_SERVER_KWARGS": {"token_expires_in": runtime.access_token_lifetime},
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
    # Device authorization grant (RFC 8628): the user's page where the user_code is typed,
    # and the same page with the code filled in (oauthlib formats {user_code}).
    "OAUTH_DEVICE_VERIFICATION_URI": f"{BASE_URL}/o/device/",
    "OAUTH_DEVICE_VERIFICATION_URI_COMPLETE": f"{BASE_URL}/o/device/?user_code={{user_code}}",
    # The answer's interval is rewritten from runtime on every request (views.py), so a
    # test can change it; this is only oauthlib's starting value.
    "DEVICE_FLOW_INTERVAL": runtime.device_interval(),
    "OAUTH2_VALIDATOR_CLASS": "tests.support.idp_project.validators.IdPValidator",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        # Server errors (tracebacks) go to the log file the test shows on failure.
        "django": {"handlers": ["stderr"], "level": "ERROR"},
        # DOT logs a warning for every password grant (RFC 9700); keep the log readable.
        "oauth2_provider": {"handlers": ["stderr"], "level": "ERROR"},
    },
}
