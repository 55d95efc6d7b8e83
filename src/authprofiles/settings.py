"""Settings: the one reader of the environment (prefix ``AUTHPROFILES_``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./authprofiles.db"


class Settings(BaseSettings):
    """Every setting, each read from ``AUTHPROFILES_<NAME>``. A field's ``description`` is
    its documentation: ``serve --help`` and the README's settings table are made from it."""

    model_config = SettingsConfigDict(env_prefix="AUTHPROFILES_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="Where everything is stored: a SQLite file (a relative path is taken "
        "from the working directory) or `postgresql+psycopg://user:password@host/db`. "
        "`serve` creates the default SQLite file on first start; other commands refuse "
        "to run without it rather than start a second, empty store.",
    )
    master_key: SecretStr | None = Field(
        default=None,
        description="Master keys instead of the key file: base64 of 32 random bytes each, "
        "comma separated, the first one encrypting new writes.",
    )
    key_file: Path = Field(
        default=Path("authprofiles.key"),
        description="The master key file, used when AUTHPROFILES_MASTER_KEY is unset; "
        "`serve` creates it (mode 0600) on first start, no other command does.",
    )
    public_url: str | None = Field(
        default=None,
        description="The URL people and identity providers reach this server at; the "
        "OAuth callback URL is this plus `/oauth/callback`. Unset: "
        "`http://HOST:PORT` from AUTHPROFILES_HOST and AUTHPROFILES_PORT (the loopback "
        "address when HOST is 0.0.0.0 or ::).",
    )
    host: str = Field(default="127.0.0.1", description="The address `serve` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="The port `serve` listens on.")
    workers: int = Field(default=1, ge=1, description="Worker processes `serve` starts.")
    refresh_skew_seconds: int = Field(
        default=60,
        ge=0,
        description="A token expiring within this many seconds is refreshed before it is "
        "handed out.",
    )
    token_reuse_seconds: float = Field(
        default=1.0,
        ge=0,
        description="A token a worker handed out is handed out again for this long "
        "without reading the database (it must still be valid beyond the skew; the "
        "access policy is still asked). 0 reads every time.",
    )
    background_refresh_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often each worker's background refresher looks for tokens about "
        "to expire.",
    )
    authorization_poll_tick_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often each worker looks for pending authorizations it polls (a "
        "device code) whose time to ask came; each is asked no more often than its server's "
        "interval.",
    )
    background_refresh_lead_seconds: int = Field(
        default=300,
        ge=0,
        description="The background refresher renews a token this long before it expires "
        "(beyond the skew).",
    )
    background_refresh_jitter: float = Field(
        default=0.1,
        ge=0,
        le=0.5,
        description="Each token is renewed up to this fraction of its lifetime earlier "
        "still, at random, so that tokens issued together do not all come due together "
        "(0.1: up to six minutes for a token that lasts an hour).",
    )
    background_refresh_batch_size: int = Field(
        default=64,
        ge=1,
        description="How many due connections a worker's background refresher leases at "
        "once (one short transaction); a full batch is followed by the next at once.",
    )
    background_refresh_concurrency: int = Field(
        default=16,
        ge=1,
        description="How many of its leased connections a worker renews at the same time "
        "(each waits on the identity provider with no database connection held).",
    )
    # RFC 9700 recommends short-lived authorization state.
    authorization_state_ttl_seconds: int = Field(
        default=600,
        gt=0,
        description="How long an authorization URL stays usable: a callback after this is refused.",
    )
    http_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="Timeout of one HTTP call to an identity provider or upstream API "
        "(connecting: at most 10 s).",
    )
    idp_retries: int = Field(
        default=2,
        ge=0,
        description="Retries of an identity provider call on 5xx, timeouts and unreadable answers.",
    )
    idp_backoff_seconds: float = Field(
        default=0.2,
        ge=0,
        description="Each retry waits a random time up to this, doubled for every further retry.",
    )
    idp_deadline_seconds: float = Field(
        default=10.0,
        gt=0,
        description="The longest a caller waits on the identity provider for one "
        "exchange, refresh or revocation, retries and backoff included; then it gets a 504.",
    )
    refresh_lease_seconds: float | None = Field(
        default=None,
        gt=0,
        description="How long a worker's claim on a connection's refresh lasts before "
        "another worker may take over (a claimant that died). Unset: the IdP deadline plus "
        "a margin, so a live claimant never loses its lease.",
    )
    log_level: str = Field(default="info", description="`debug`, `info`, `warning` or `error`.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`text`: a line a person reads; `json`: one JSON object a line (time, "
        "level, logger, message and each field of the line, e.g. an access line's method, "
        "path, status, duration_ms and caller), for a log collector.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="The largest request body the API reads (413 beyond it, answered "
        "before it is read whole). The proxy streams bodies and has no such limit.",
    )

    # -- people signing in: sessions, password sign-in, single sign-on (HELPER C) --------
    session_idle_minutes: int = Field(
        default=60,
        gt=0,
        description="A signed-in session ends after this many minutes without a request.",
    )
    session_absolute_hours: int = Field(
        default=12,
        gt=0,
        description="A signed-in session ends this many hours after sign-in, however active.",
    )
    session_rotate_minutes: int = Field(
        default=10,
        gt=0,
        description="A session's cookie is replaced by a new one (Set-Cookie) once it is "
        "this old; the old one keeps working for a minute, for requests already on their way.",
    )
    signin_max_failures_per_account: int = Field(
        default=5,
        gt=0,
        description="Failed password sign-ins to one account within "
        "AUTHPROFILES_SIGNIN_LOCK_MINUTES that lock it for that long.",
    )
    signin_max_failures_per_address: int = Field(
        default=20,
        gt=0,
        description="Failed password sign-ins from one client address within "
        "AUTHPROFILES_SIGNIN_LOCK_MINUTES that lock that address out for that long.",
    )
    signin_lock_minutes: int = Field(
        default=15,
        gt=0,
        description="The window failed sign-ins are counted in, and how long a lock lasts.",
    )
    password_reset_hours: int = Field(
        default=24,
        gt=0,
        description="How long a password reset link works (once).",
    )
    sso_issuer: str | None = Field(
        default=None,
        description="Single sign-on: the OpenID Connect provider's issuer URL (its "
        "metadata is read from `{issuer}/.well-known/openid-configuration`). Unset: "
        "password sign-in only. Register `{public URL}/signin/sso/callback` as the "
        "client's redirect URI.",
    )
    sso_client_id: str | None = Field(
        default=None, description="Single sign-on: this server's client id at the provider."
    )
    sso_client_secret: SecretStr | None = Field(
        default=None,
        description="Single sign-on: the client secret (sent with HTTP Basic); unset for "
        "a public client (PKCE alone).",
    )
    sso_provider_name: str | None = Field(
        default=None,
        description='The sign-in page\'s button says "Sign in with <name>". Unset: the '
        "issuer's host name.",
    )
    sso_provision_role: Literal["admin", "developer", "viewer"] | None = Field(
        default=None,
        description="Unset: only existing users may sign in by single sign-on (matched by "
        "verified email). Set: a person the provider vouches for who has no account yet "
        "gets one, with this role in the first workspace.",
    )
    sso_scopes: str = Field(
        default="openid email profile",
        description="The scopes asked of the OpenID provider (`openid` and `email` are "
        "needed to match people by email).",
    )
    sso_allowed_domains: str | None = Field(
        default=None,
        description="Single sign-on: the email domains allowed to sign in, comma separated "
        "(e.g. `example.com,example.org`; exact domains, no subdomains). A verified email "
        "at any other domain is refused before it is matched to an account or one is "
        "made. Unset or empty: any domain (the provider decides who may sign in).",
    )

    # -- notifications: email over SMTP, signed webhooks, the outbox (HELPER A) -----------
    smtp_host: str | None = Field(
        default=None,
        description="The SMTP server incident emails go through. Unset: no email is sent "
        "(webhooks still are).",
    )
    smtp_port: int = Field(
        default=587, ge=1, le=65535, description="The SMTP server's port (465 for `tls`)."
    )
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        default="starttls",
        description="`starttls`: upgrade the connection with STARTTLS (refused if the "
        "server does not offer it); `tls`: TLS from the first byte; `none`: plain SMTP, "
        "needing no credentials (a relay on a trusted network).",
    )
    smtp_username: str | None = Field(
        default=None, description="The SMTP login; unset: no AUTH is attempted."
    )
    smtp_password: SecretStr | None = Field(
        default=None, description="The SMTP password (never logged or shown)."
    )
    smtp_from: str = Field(
        default="authprofiles@localhost",
        description="The sender address of every email this server sends.",
    )
    smtp_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=30,
        description="How long one exchange with the SMTP server may take before the email "
        "is tried again later (emails are sent apart from webhooks, so a slow server "
        "delays only emails).",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhook URLs on loopback and private addresses (checked when a "
        "webhook is made and again, after resolving its host, at each delivery).",
    )
    notification_tick_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often each worker looks for emails and webhook calls due in the outbox.",
    )
    notification_retry_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A failed delivery is tried again after about this long, doubled (with "
        "jitter) for each further failure up to an hour; after 10 attempts it is given up.",
    )

    # -- the audit log (HELPER B) -----------------------------------------------------------
    audit_flush_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often each worker writes its count of the tokens it handed out "
        "(one `token.issued` audit entry per connection, caller and minute, once the "
        "minute has ended; the rest at shutdown).",
    )

    # -- traces and metrics -----------------------------------------------------------------
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, `GET /metrics` answers only `Authorization: Bearer <this "
        "token>` (401 otherwise). Unset: anyone who reaches the server may read the "
        "metrics (counts and timings; they carry no secret).",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="The OpenTelemetry collector spans are sent to over OTLP/HTTP, e.g. "
        "`http://otel-collector:4318` (spans go to its `/v1/traces`). Unset or empty: no "
        "span is recorded or sent. The standard `OTEL_EXPORTER_OTLP_*` variables (headers, "
        "certificates, timeout) and `OTEL_TRACES_SAMPLER` apply.",
    )
    otlp_service_name: str = Field(
        default="authprofiles",
        description="The `service.name` the spans are sent under.",
    )

    approval_ttl_seconds: int = Field(
        default=3600,
        ge=10,
        le=7 * 24 * 3600,
        description="How long a call an agent made that waits for a person's approval "
        "stays open, and how long an approved call may then be made once; after that "
        "it is `expired`.",
    )
    agent_access_token_seconds: int = Field(
        default=3600,
        ge=60,
        le=24 * 3600,
        description="The lifetime of an access token the server's own token endpoint "
        "issues for an agent grant (client credentials, for `/mcp` or the proxy); never "
        "beyond the grant's own expiry.",
    )

    @property
    def public_base_url(self) -> str:
        """AUTHPROFILES_PUBLIC_URL when set, else the URL ``serve`` listens at, as a browser
        on this machine reaches it."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{reachable_host(self.host)}:{self.port}"

    @property
    def callback_url(self) -> str:
        return self.public_base_url + "/oauth/callback"

    @property
    def sso_allowed_domain_set(self) -> frozenset[str]:
        """AUTHPROFILES_SSO_ALLOWED_DOMAINS as lower-case domains (empty: any)."""
        return frozenset(
            part.strip().lower().lstrip("@")
            for part in (self.sso_allowed_domains or "").split(",")
            if part.strip().lstrip("@")
        )


def reachable_host(host: str) -> str:
    """``host`` as a URL can name it: an address meaning "every interface" (``0.0.0.0``,
    ``::``) is no place to send a browser, so it becomes the loopback address of its
    family; an IPv6 address goes in brackets (RFC 3986 section 3.2.2)."""
    host = host.strip()
    if listens_everywhere(host):
        return "[::1]" if ":" in host else "127.0.0.1"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def listens_everywhere(host: str) -> bool:
    return host.strip() in ("", "0.0.0.0", "::", "[::]")  # noqa: S104


@dataclass(frozen=True)
class SettingDoc:
    """One line of the settings reference."""

    env: str
    default: str
    meaning: str


def settings_reference() -> list[SettingDoc]:
    """Every setting, its environment variable, default and meaning, from the fields."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return [
        SettingDoc(
            env=f"{prefix}{name.upper()}",
            default=_shown(field.get_default(call_default_factory=True)),
            meaning=field.description or "",
        )
        for name, field in Settings.model_fields.items()
    ]


def settings_reference_markdown() -> str:
    """The README's settings table (see ``tests/unit/test_settings.py``)."""
    rows = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for doc in settings_reference():
        default = f"`{doc.default}`" if doc.default != UNSET else UNSET
        meaning = doc.meaning.replace("|", "\\|")
        rows.append(f"| `{doc.env}` | {default} | {meaning} |")
    return "\n".join(rows)


UNSET = "unset"


def _shown(value: Any) -> str:
    if value is None:
        return UNSET
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
