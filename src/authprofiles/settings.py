"""Settings: the one reader of the environment (prefix ``AUTHPROFILES_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTHPROFILES_", extra="ignore")

    database_url: str = "sqlite:///./authprofiles.db"
    #: One or more base64 keys of 32 bytes, comma separated, the first one active.
    master_key: SecretStr | None = None
    #: Used when ``master_key`` is not set; created with mode 0600 on first start.
    key_file: Path = Path("authprofiles.key")
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    #: A token expiring within this many seconds is refreshed before it is handed out.
    refresh_skew_seconds: int = Field(default=60, ge=0)
    #: A token this worker handed out is handed out again for this long without reading
    #: the database (it must still be valid beyond the skew; the policy is still asked).
    #: 0 reads every time.
    token_reuse_seconds: float = Field(default=1.0, ge=0)
    #: How often the background refresher looks for tokens about to expire.
    background_refresh_interval_seconds: float = Field(default=30.0, gt=0)
    #: Refresh ahead of expiry by this much in the background (beyond the skew).
    background_refresh_lead_seconds: int = Field(default=300, ge=0)
    #: RFC 9700 recommends short-lived authorization state; seeds ask for 10 minutes.
    authorization_state_ttl_seconds: int = Field(default=600, gt=0)
    http_timeout_seconds: float = Field(default=15.0, gt=0)
    #: Retries on 5xx, timeouts and unreadable answers from the IdP.
    idp_retries: int = Field(default=2, ge=0)
    idp_backoff_seconds: float = Field(default=0.2, ge=0)
    #: How long a worker's claim on a connection's refresh lasts before another worker may
    #: take over (a claimant that died). Unset: the longest an IdP call can take with its
    #: retries, plus a margin, so a live claimant never loses its lease.
    refresh_lease_seconds: float | None = Field(default=None, gt=0)
    log_level: str = "info"
    #: The largest request body the API reads (413 beyond it, answered before it is read
    #: whole). The proxy streams bodies to the upstream API and has no such limit.
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)

    @property
    def callback_url(self) -> str:
        return self.public_url.rstrip("/") + "/oauth/callback"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
