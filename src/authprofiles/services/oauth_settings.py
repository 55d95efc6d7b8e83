"""Turn a profile and a connection into the rendered settings one grant needs."""

from __future__ import annotations

from authprofiles.core.connections import Connection
from authprofiles.core.errors import FieldError, ValidationFailed, unfilled_template
from authprofiles.core.profiles import Profile, ProfileDefinition, field_values
from authprofiles.core.templating import TemplateError, render_url
from authprofiles.core.validation import missing_fields
from authprofiles.oauth.engine import ClientSettings
from authprofiles.services.errors import NotConfigured


def require_configured(profile: Profile) -> Profile:
    """A profile that can be used: every mandatory field set, else a 409 naming them."""
    missing = missing_fields(profile)
    if missing:
        raise NotConfigured(
            f"profile {profile.name!r} is not configured; set: {', '.join(missing)}"
        )
    return profile


def render(
    profile: ProfileDefinition, field: str, tenant: str | None, values: dict[str, str]
) -> str | None:
    """The profile's URL ``field`` filled in with the tenant and ``values`` (the
    connection's :func:`field_values`)."""
    template = getattr(profile, field)
    if not template:
        return None
    try:
        return render_url(template, tenant=tenant, fields=values)
    except TemplateError as exc:
        raise unfilled_template(field, exc) from None


def client_settings(
    profile: ProfileDefinition,
    *,
    tenant: str | None,
    fields: dict[str, str],
    redirect_uri: str,
) -> ClientSettings:
    values = field_values(profile, fields)  # once, for every URL below
    token_url = render(profile, "token_url", tenant, values)
    if token_url is None or profile.client_id is None:
        raise ValidationFailed([FieldError("token_url", "the profile has no token URL")])
    refresh = render(profile, "refresh_token_url", tenant, values) or token_url
    return ClientSettings(
        client_id=profile.client_id,
        client_secret=profile.client_secret,
        auth_method=profile.client_auth_method.value,
        token_url=token_url,
        refresh_url=refresh,
        redirect_uri=redirect_uri,
        authorization_url=render(profile, "authorization_url", tenant, values),
        revocation_url=render(profile, "revocation_url", tenant, values),
        scopes=profile.scopes,
        extra_params={f.key: f.value for f in profile.additional_fields},
        egress_proxy_url=render(profile, "egress_proxy_url", tenant, values),
        pkce=profile.pkce,
        private_key=profile.private_key,
        private_key_id=profile.private_key_id,
        client_assertion_audience=render(profile, "client_assertion_audience", tenant, values),
        issuer=render(profile, "issuer", tenant, values),
        device_authorization_url=render(profile, "device_authorization_url", tenant, values),
    )


def connection_settings(
    profile: ProfileDefinition, connection: Connection, redirect_uri: str
) -> ClientSettings:
    return client_settings(
        profile, tenant=connection.tenant, fields=connection.fields, redirect_uri=redirect_uri
    )
