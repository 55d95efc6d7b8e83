"""Console pages of the Authorization profiles (seed 000: Settings > Security & Control >
Authorization profile; seeds 001-003: the New Authorization Mechanism dialog and its test).

- ``/console/profiles``: the list (Name, Authorization Type, Test, Status, the ellipsis
  menu), searched and filtered on the server, or the empty state.
- ``/console/profiles/new`` and ``/console/profiles/{id}/edit``: the form, made from the
  registry of auth types (``core.auth_types``) that validation, the API and the CLI read:
  the fields each type shows, their labels, hints, choices and mandatory rules. It is sent
  to the JSON API by ``static/profiles.js``, whose validation answers beside each field.
- ``/console/profiles/{id}``: the profile's activity (status, last refresh, failures, the
  open incident, the audit entries about it).

Pages only read, with the signed-in person's principal; secrets never reach a template:
the form and the activity page are made from the API's public view of a profile
(``services.profiles.public_view``), which says of a secret only whether it is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from authprofiles.core.auth_types import (
    AUTH_TYPES,
    CHOICE_HINTS,
    CHOICE_LABELS,
    FIELD_LABELS,
    FORM_SECTIONS,
    AuthType,
    AuthTypeSpec,
    spec_for,
)
from authprofiles.core.callers import Role
from authprofiles.core.errors import DomainError, NotFound
from authprofiles.core.profiles import (
    SECRET_FIELDS,
    URL_FIELDS,
    AuthorizationMode,
    ClientAuthMethod,
    FieldLocation,
    FormFieldType,
    FormFieldVisibility,
    HttpMethod,
    Profile,
    ProfileStatus,
    TestContentType,
    fields_of,
)
from authprofiles.core.validation import (
    client_credential_fields,
    missing_fields,
    required_fields,
)
from authprofiles.services.audit import AuditFilters, AuditRecord
from authprofiles.services.profiles import public_view
from authprofiles.web.console.base import ConsolePage, console_page, notices
from authprofiles.web.console.views import ConnectionView, Paging, missing_profile

router = APIRouter(include_in_schema=False)

notices(
    profile_created="The new auth profile is saved. Test it with the Test button.",
    profile_updated="The auth profile is updated.",
    profile_deleted="The auth profile is deleted.",
)

#: Where the profile pages sit (seed 000): (label, link) of each step; a page adds its own.
BREADCRUMBS: list[tuple[str, str | None]] = [
    ("Settings", None),
    ("Security & Control", None),
    ("Authorization profile", "/console/profiles"),
]

# -- the status of a profile, as the list and the activity page show it ------------------

_STATUS_LABELS = {
    ProfileStatus.CONFIGURED: ("Configured", "success"),
    ProfileStatus.NOT_CONFIGURED: ("Not Configured", "warning"),
    ProfileStatus.FAILING: ("Failing", "danger"),
}


@dataclass(frozen=True)
class StatusView:
    value: str
    label: str
    badge: str
    #: Why: the mandatory fields still empty, or what the identity provider said.
    reason: str


def label_of(auth_type: AuthType, field_name: str) -> str:
    """A field, or an item of a list field (``additional_fields[0].value``), in the
    form's words."""
    spec = spec_for(auth_type)
    base, _, rest = field_name.partition("[")
    label = spec.label_of(base)
    if not rest:
        return label
    index, _, sub = rest.partition("]")
    sub = sub.lstrip(".")
    return f"{label} #{int(index) + 1}" + (f" ({sub.replace('_', ' ')})" if sub else "")


def status_of(profile: Profile) -> StatusView:
    status = profile.status
    label, badge = _STATUS_LABELS[status]
    if status is ProfileStatus.NOT_CONFIGURED:
        missing = [label_of(profile.auth_type, f) for f in missing_fields(profile)]
        reason = "Missing: " + ", ".join(missing) + "."
    elif status is ProfileStatus.FAILING:
        reason = profile.failing_reason or "The identity provider refused it."
    else:
        reason = "Every mandatory field is set."
    return StatusView(status.value, label, badge, reason)


def can_test(page: ConsolePage, profile_id: str, usable: frozenset[str] | None) -> bool:
    """Whether the API lets this person test the profile: admins any, developers those
    shared with them (``usable``), viewers none."""
    if page.allows(Role.ADMIN):
        return True
    if not page.allows(Role.DEVELOPER):
        return False
    return usable is not None and profile_id in usable


async def usable_profiles(page: ConsolePage) -> frozenset[str] | None:
    """The profiles a developer was invited to (None for admins and viewers: not needed)."""
    user_id = page.principal.user_id
    if page.allows(Role.ADMIN) or not page.allows(Role.DEVELOPER) or user_id is None:
        return None
    found = await page.call(page.services.access_index.usable, page.principal.workspace_id, user_id)
    return frozenset(found)


@dataclass(frozen=True)
class TestSetup:
    """What the Test dialog asks for a profile, as ``data-`` attributes of its button."""

    __test__ = False  # not a pytest class, despite the name

    profile_id: str
    name: str
    auth_type: str
    tenancy: bool
    user_mode: bool
    form_fields: list[dict[str, Any]]

    @classmethod
    def of(cls, profile: Profile) -> TestSetup:
        return cls(
            profile_id=profile.id,
            name=profile.name,
            auth_type=profile.auth_type.value,
            tenancy=bool(profile.tenancy),
            user_mode=profile.auth_type is AuthType.PASSWORD
            and profile.authorization_mode is AuthorizationMode.USER,
            form_fields=[f.model_dump(mode="json") for f in profile.form_fields],
        )


def _test_disabled_reason(status: StatusView) -> str:
    if status.value == ProfileStatus.NOT_CONFIGURED.value:
        return "Test is available once every mandatory field is set. " + status.reason
    return ""


@dataclass(frozen=True)
class ListedProfile:
    id: str
    name: str
    type_label: str
    identity_provider: str | None
    status: StatusView
    testable: bool
    test_disabled_reason: str
    test: TestSetup
    connections: int | None
    delete_message: str


def delete_message(profile: Profile, connections: int | None) -> str:
    """What deleting takes with it, as ``ProfileService.delete`` does it: the connections
    and their tokens, revoked first at the identity provider when it has a revocation URL."""
    if connections is None:
        held, them = "Its connections and their tokens are deleted with it", "their tokens"
    elif connections == 0:
        held, them = "It has no connections", ""
    elif connections == 1:
        held, them = "Its connection and that connection's tokens are deleted with it", "they"
    else:
        held, them = f"Its {connections} connections and their tokens are deleted with it", "they"
    if not them:
        revoked = ""
    elif profile.revocation_url:
        revoked = (
            f"; {them} are revoked first at the identity provider's revocation URL, so the "
            "people and agents using them lose access"
        )
    else:
        revoked = (
            "; the profile has no revocation URL, so the tokens are not revoked at the "
            "identity provider and stay valid there until they expire"
        )
    return (
        f"Delete the auth profile {profile.name!r}? A deleted profile cannot be recovered. "
        f"{held}{revoked}."
    )


async def connection_counts(page: ConsolePage) -> dict[str, int] | None:
    """Connections per profile, for the delete confirmation (admins: they see them all),
    counted by the database (no connection is read, let alone decrypted)."""
    if not page.allows(Role.ADMIN):
        return None
    return await page.call(page.services.connections.counts_by_profile, page.principal)


def _matches(profile: Profile, status: StatusView, q: str, wanted: str) -> bool:
    if wanted and status.value != wanted:
        return False
    if not q:
        return True
    needle = q.casefold()
    return any(
        needle in (text or "").casefold()
        for text in (profile.name, profile.identity_provider, spec_for(profile.auth_type).label)
    )


STATUS_FILTERS = (
    ("", "Any status"),
    (ProfileStatus.CONFIGURED.value, "Configured"),
    (ProfileStatus.NOT_CONFIGURED.value, "Not Configured"),
    (ProfileStatus.FAILING.value, "Failing"),
)


def _profile_key(profile: Profile) -> list[str]:
    """A profile's place in the list (by name, then id), as the API's cursor holds it."""
    return [profile.name, profile.id]


@dataclass(frozen=True)
class ProfilePage:
    """The profiles of one page of the list, and what the page says about the rest."""

    profiles: list[Profile]
    more: bool
    #: Whether the workspace has any profile at all (the empty state when not).
    any: bool
    #: With a search: how many match, of how many there are (None without one: the
    #: list is read a page at a time, not counted).
    matched: int | None = None
    total: int | None = None


def _profile_page(page: ConsolePage, paging: Paging, q: str, wanted: str) -> ProfilePage:
    """A page of the list, by name. Without a search, read a page at a time (keyset,
    as the API pages it); a search (part of a name, the identity provider or the type,
    and the status, which is worked out per profile) reads them all and pages the
    matches."""
    services, principal = page.services, page.principal
    if not (q or wanted):
        found = services.profiles.list(principal, after=paging.after_key, limit=paging.fetch)
        shown, more = paging.split(found)
        return ProfilePage(shown, more, any=bool(found) or paging.cursor is not None)
    every = services.profiles.list(principal)
    matches = [p for p in every if _matches(p, status_of(p), q, wanted)]
    after = paging.after_key
    rest = [p for p in matches if after is None or (p.name, p.id) > after]
    shown, more = paging.split(rest[: paging.fetch])
    return ProfilePage(shown, more, any=bool(every), matched=len(matches), total=len(every))


@router.get("/console/profiles")
async def profiles_list(
    request: Request,
    page: ConsolePage = Depends(console_page),
    q: str = Query(default=""),
    status: str = Query(default=""),
) -> Response:
    q = q.strip()[:200]  # a longer one matches nothing anyway
    wanted = status if status in {value for value, _ in STATUS_FILTERS} else ""
    paging = Paging.of(request, by_creation=False)
    listed = await page.call(_profile_page, page, paging, q, wanted)
    usable = await usable_profiles(page)
    counts = await connection_counts(page) if listed.profiles else None
    rows = []
    for profile in listed.profiles:
        count = counts.get(profile.id, 0) if counts is not None else None
        view = status_of(profile)
        rows.append(
            ListedProfile(
                id=profile.id,
                name=profile.name,
                type_label=spec_for(profile.auth_type).label,
                identity_provider=profile.identity_provider,
                status=view,
                testable=can_test(page, profile.id, usable),
                test_disabled_reason=_test_disabled_reason(view),
                test=TestSetup.of(profile),
                connections=count,
                delete_message=delete_message(profile, count),
            )
        )
    search = {name: value for name, value in (("q", q), ("status", wanted)) if value}
    return page.render(
        "profiles.html",
        {
            "rows": rows,
            "any": listed.any,
            "matched": listed.matched,
            "total": listed.total,
            "q": q,
            "status": wanted,
            "status_filters": STATUS_FILTERS,
            "breadcrumbs": BREADCRUMBS,
            "can_manage": page.allows(Role.ADMIN),
            "filtered": bool(q or wanted),
            **paging.links("/console/profiles", listed.profiles, listed.more, _profile_key, search),
        },
        active="profiles",
        title="Authorization profiles",
    )


# -- the form: the registry's fields, as inputs -------------------------------------------


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    hint: str = ""


@dataclass(frozen=True)
class Variant:
    """A label or hint, and the auth types that word it so."""

    text: str
    types: tuple[str, ...]


@dataclass(frozen=True)
class FormInput:
    """One field of the form: its input, and for which auth types and choices it shows."""

    name: str
    widget: str
    types: tuple[str, ...]
    labels: tuple[Variant, ...]
    hints: tuple[Variant, ...]
    choices: tuple[Choice, ...] = ()
    #: ``"client_auth_method:private_key_jwt"``: shown only while that input has one of
    #: those values (space-separated); hidden otherwise (and then not sent).
    when: str = ""

    def label_for(self, auth_type: str) -> str:
        return next((v.text for v in self.labels if auth_type in v.types), self.labels[0].text)


@dataclass(frozen=True)
class FormSection:
    title: str
    types: tuple[str, ...]
    inputs: tuple[FormInput, ...]


#: How each field is typed in. URL fields and secrets are known by ``URL_FIELDS`` and
#: ``SECRET_FIELDS``; the rest are named here.
_WIDGETS: Mapping[str, str] = {
    "identity_provider": "text",
    "description": "textarea",
    "callback_url": "callback",
    "client_id": "text",
    "client_auth_method": "select",
    "private_key_id": "text",
    "tenancy": "radio",
    "authorization_mode": "radio",
    "scopes": "list",
    "pkce": "checkbox",
    "allow_insecure_http": "checkbox",
    "username": "text",
    "additional_fields": "additional_fields",
    "authorization_fields": "authorization_fields",
    "form_fields": "form_fields",
    "token_test_method": "select",
    "token_test_content_type": "select",
    "auth_error_status_code": "int",
    "egress_proxy_url": "connector",
}

#: The API's values of each field offered as a choice (the labels are the registry's).
_CHOICE_VALUES: Mapping[str, tuple[str, ...]] = {
    "tenancy": ("false", "true"),
    "authorization_mode": tuple(m.value for m in AuthorizationMode),
    "client_auth_method": tuple(m.value for m in ClientAuthMethod),
    "token_test_method": tuple(m.value for m in HttpMethod),
    "token_test_content_type": tuple(m.value for m in TestContentType),
    "authorization_fields.type": tuple(m.value for m in FieldLocation),
    "form_fields.type": tuple(m.value for m in FormFieldType),
    "form_fields.visibility": tuple(m.value for m in FormFieldVisibility),
}

#: private_key_jwt's other fields show with it (the key itself follows the method's
#: credential, ``client_credential_fields``).
_PRIVATE_KEY_JWT_ONLY = ("private_key_id", "client_assertion_audience")


def widget_of(name: str) -> str:
    if name in _WIDGETS:
        return _WIDGETS[name]
    if name == "private_key":
        return "secret-textarea"
    if name in SECRET_FIELDS:
        return "secret"
    if name in URL_FIELDS:
        return "url"
    raise KeyError(f"the console has no input for the field {name!r}")


def choices_of(name: str) -> tuple[Choice, ...]:
    """The API's values in the registry's order and words (a value the registry does not
    word yet comes last, as itself)."""
    values = _CHOICE_VALUES.get(name, ())
    labels = CHOICE_LABELS.get(name, {})
    hints = CHOICE_HINTS.get(name, {})
    ordered = [v for v in labels if v in values] + [v for v in values if v not in labels]
    return tuple(Choice(v, labels.get(v, v), hints.get(v, "")) for v in ordered)


def _types_showing(name: str) -> tuple[str, ...]:
    return tuple(
        spec.auth_type.value
        for spec in AUTH_TYPES
        if name in fields_of(spec.auth_type) or name in spec.shown_read_only
    )


def _variants(types: Sequence[str], word: Callable[[AuthTypeSpec], str]) -> tuple[Variant, ...]:
    grouped: dict[str, list[str]] = {}
    for auth_type in types:
        grouped.setdefault(word(spec_for(AuthType(auth_type))), []).append(auth_type)
    return tuple(Variant(text, tuple(ts)) for text, ts in grouped.items())


def _when(name: str) -> str:
    methods = [m.value for m in ClientAuthMethod if name in client_credential_fields(m)]
    if name in ("client_secret", "private_key"):
        return "client_auth_method:" + " ".join(methods)
    if name in _PRIVATE_KEY_JWT_ONLY:
        return "client_auth_method:" + ClientAuthMethod.PRIVATE_KEY_JWT.value
    modes = sorted({m for s in AUTH_TYPES for m, fs in s.mandatory_in_mode.items() if name in fs})
    if modes:
        return "authorization_mode:" + " ".join(modes)
    if name == "egress_proxy_url":
        return "connector:yes"
    return ""


def form_input(name: str) -> FormInput:
    types = _types_showing(name)
    return FormInput(
        name=name,
        widget=widget_of(name),
        types=types,
        labels=_variants(types, lambda spec: spec.label_of(name)),
        hints=_variants(types, lambda spec: spec.hint_of(name)),
        choices=choices_of(name),
        when=_when(name),
    )


def form_sections() -> tuple[FormSection, ...]:
    sections = []
    for title, names in FORM_SECTIONS:
        inputs = tuple(form_input(n) for n in names)
        types = tuple(t.value for t in AuthType if any(t.value in i.types for i in inputs))
        sections.append(FormSection(title, types, inputs))
    return tuple(sections)


SECTIONS = form_sections()


def form_rules() -> dict[str, Any]:
    """The mandatory rules of every type, for the script that marks mandatory fields as
    the type, the client authentication method and the mode change (the same rules as
    ``core.validation.required_fields``)."""
    return {
        "types": {
            spec.auth_type.value: {
                "mandatory": list(spec.mandatory),
                "in_mode": {k: list(v) for k, v in spec.mandatory_in_mode.items()},
                "with_test_url": list(spec.mandatory_with_token_test_url),
            }
            for spec in AUTH_TYPES
        },
        "credential": {m.value: list(client_credential_fields(m)) for m in ClientAuthMethod},
    }


def required_now(auth_type: AuthType, values: Mapping[str, Any]) -> frozenset[str]:
    """The fields mandatory for ``auth_type`` given the form's values (its method, mode and
    token test URL), as validation will judge them."""

    def is_set(name: str) -> bool:
        value = values.get(name)
        return value not in (None, "", [], False) or (name == "tenancy" and value is False)

    mode = values.get("authorization_mode")
    method = values.get("client_auth_method") or ClientAuthMethod.CLIENT_SECRET_BASIC.value
    return frozenset(
        required_fields(
            auth_type,
            is_set,
            AuthorizationMode(mode) if mode in {m.value for m in AuthorizationMode} else None,
            client_auth_method=ClientAuthMethod(method),
        )
    )


def shown(form: FormInput, auth_type: str, values: Mapping[str, Any]) -> bool:
    """Whether the form shows this input now (the script decides it again on change)."""
    if auth_type not in form.types:
        return False
    if not form.when:
        return True
    control, _, allowed = form.when.partition(":")
    current = values.get(control)
    if control == "connector":
        current = "yes" if values.get("egress_proxy_url") else "no"
    elif control == "client_auth_method":
        current = current or ClientAuthMethod.CLIENT_SECRET_BASIC.value
    return str(current) in allowed.split()


_NEW_DEFAULTS: Mapping[str, Any] = {
    "client_auth_method": ClientAuthMethod.CLIENT_SECRET_BASIC.value,
    "pkce": True,
    "allow_insecure_http": False,
    "scopes": [],
    "additional_fields": [],
    "authorization_fields": [],
    "form_fields": [],
}


def _form_context(
    page: ConsolePage, *, auth_type: AuthType, values: Mapping[str, Any], editing: bool
) -> dict[str, Any]:
    return {
        "sections": SECTIONS,
        "auth_types": [(s.auth_type.value, s.label) for s in AUTH_TYPES],
        "selected_type": auth_type.value,
        "values": values,
        "required": required_now(auth_type, values),
        "rules": form_rules(),
        "shown": shown,
        "editing": editing,
        "callback_url": page.services.settings.callback_url,
        "breadcrumbs": BREADCRUMBS,
        "choice_rows": {
            key: choices_of(key)
            for key in ("authorization_fields.type", "form_fields.type", "form_fields.visibility")
        },
        "labels": FIELD_LABELS,
    }


@router.get("/console/profiles/new")
async def new_profile(
    page: ConsolePage = Depends(console_page),
    type: str = Query(default=""),
) -> Response:
    page.require(Role.ADMIN)
    known = {t.value for t in AuthType}
    auth_type = AuthType(type) if type in known else next(iter(AUTH_TYPES)).auth_type
    context = _form_context(page, auth_type=auth_type, values=_NEW_DEFAULTS, editing=False)
    return page.render(
        "profile_form.html",
        {**context, "profile": None},
        active="profiles",
        title="New Authorization Mechanism",
    )


async def _profile_or_none(page: ConsolePage, profile_id: str) -> Profile | None:
    try:
        return await page.call(page.services.profiles.get, page.principal, profile_id)
    except NotFound:
        return None


@router.get("/console/profiles/{profile_id}/edit")
async def edit_profile(profile_id: str, page: ConsolePage = Depends(console_page)) -> Response:
    page.require(Role.ADMIN)
    profile = await _profile_or_none(page, profile_id)
    if profile is None:
        return missing_profile(page)
    # The public view only: a secret is "set", never its value.
    values = public_view(profile, page.services.settings.callback_url)
    context = _form_context(page, auth_type=profile.auth_type, values=values, editing=True)
    count = await _connection_count(page, profile.id)
    return page.render(
        "profile_form.html",
        {
            **context,
            "profile": values,
            "type_label": spec_for(profile.auth_type).label,
            "status": status_of(profile),
            "delete_message": delete_message(profile, count),
        },
        active="profiles",
        title=f"Update authorization mechanism: {profile.name}",
    )


async def _connection_count(page: ConsolePage, profile_id: str) -> int | None:
    counts = await connection_counts(page)
    return None if counts is None else counts.get(profile_id, 0)


# -- the activity of one profile ------------------------------------------------------------


@dataclass(frozen=True)
class SummaryItem:
    label: str
    value: str
    kind: str = "text"  # text, url, secret, list, none


@dataclass
class Activity:
    connections: list[ConnectionView] = field(default_factory=list)
    last_refresh: datetime | None = None
    failures: list[AuditRecord | ConnectionView] = field(default_factory=list)
    entries: list[AuditRecord] = field(default_factory=list)
    audit_visible: bool = False


def summary_of(profile: Profile, callback_url: str) -> list[SummaryItem]:
    """The profile's settings in the form's words; a secret is "Set" or "Not set"."""
    spec = spec_for(profile.auth_type)
    public = public_view(profile, callback_url)
    items: list[SummaryItem] = []
    for section in SECTIONS:
        for form in section.inputs:
            name = form.name
            if not shown(form, profile.auth_type.value, public):
                continue
            label = spec.label_of(name)
            if name in SECRET_FIELDS:
                items.append(
                    SummaryItem(label, "Set" if public[f"{name}_set"] else "Not set", "secret")
                )
                continue
            value = callback_url if name == "callback_url" else public.get(name)
            items.append(_summary_item(label, name, value))
    return items


def _summary_item(label: str, name: str, value: Any) -> SummaryItem:
    if value in (None, "", []):
        return SummaryItem(label, "—", "none")
    if name == "tenancy":
        return SummaryItem(label, "Yes" if value else "No")
    if isinstance(value, bool):
        return SummaryItem(label, "On" if value else "Off")
    if name in CHOICE_LABELS:
        return SummaryItem(label, CHOICE_LABELS[name].get(str(value), str(value)))
    if name == "scopes":
        return SummaryItem(label, " ".join(value), "list")
    if name == "additional_fields":
        shown = ", ".join(f"{f['key']} ({'set' if f['value_set'] else 'not set'})" for f in value)
        return SummaryItem(label, shown, "list")
    if name == "authorization_fields":
        where = CHOICE_LABELS["authorization_fields.type"]
        shown = ", ".join(f"{where.get(f['type'], f['type'])}: {f['key']}" for f in value)
        return SummaryItem(label, shown, "list")
    if name == "form_fields":
        shown = ", ".join(f"{f['title']} ({f['key']})" for f in value)
        return SummaryItem(label, shown, "list")
    if name in URL_FIELDS or name == "callback_url":
        return SummaryItem(label, str(value), "url")
    return SummaryItem(label, str(value))


async def activity_of(page: ConsolePage, profile: Profile) -> Activity:
    activity = Activity()
    if page.allows(Role.DEVELOPER):
        connections = await page.call(page.services.connections.list, page.principal, profile.id)
        now = datetime.now(UTC)
        activity.connections = [ConnectionView.of(c, now) for c in connections]
        refreshed = [c.refreshed_at.at for c in activity.connections if c.refreshed_at]
        activity.last_refresh = max(refreshed) if refreshed else None
    if page.allows(Role.ADMIN):
        activity.audit_visible = True
        activity.entries = await page.call(
            page.services.audit_log.query,
            page.principal,
            AuditFilters(profile_id=profile.id),
            None,
            15,
        )
        failures = await page.call(
            page.services.audit_log.query,
            page.principal,
            AuditFilters(profile_id=profile.id, action="token.refresh_failed"),
            None,
            10,
        )
        activity.failures = list(failures)
    else:
        activity.failures = [c for c in activity.connections if c.last_error]
    return activity


@dataclass(frozen=True)
class ProfileHeading:
    """What the activity page shows of the profile itself, beside its summary (whose
    secrets say only "Set" or "Not set"): never the profile, which holds its secrets."""

    id: str
    name: str
    identity_provider: str | None
    description: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, profile: Profile) -> ProfileHeading:
        return cls(
            id=profile.id,
            name=profile.name,
            identity_provider=profile.identity_provider,
            description=profile.description,
            created_at=profile.created_at,
            updated_at=profile.updated_at,
        )


def owner_label(owner: str, me: str | None) -> str:
    if owner == "shared":
        return "Shared"
    if me is not None and owner == me:
        return "You"
    return "A user"


@router.get("/console/profiles/{profile_id}")
async def profile_activity(profile_id: str, page: ConsolePage = Depends(console_page)) -> Response:
    profile = await _profile_or_none(page, profile_id)
    if profile is None:
        return missing_profile(page)
    usable = await usable_profiles(page)
    view = status_of(profile)
    activity = await activity_of(page, profile)
    count = len(activity.connections) if page.allows(Role.ADMIN) else None
    emails = await _member_emails(page, (c.owner for c in activity.connections))
    return page.render(
        "profile_detail.html",
        {
            "profile": ProfileHeading.of(profile),
            "type_label": spec_for(profile.auth_type).label,
            "status": view,
            "summary": summary_of(profile, page.services.settings.callback_url),
            "activity": activity,
            "testable": can_test(page, profile.id, usable),
            "test_disabled_reason": _test_disabled_reason(view),
            "test": TestSetup.of(profile),
            "can_manage": page.allows(Role.ADMIN),
            "delete_message": delete_message(profile, count),
            "owner_label": lambda owner: (
                emails.get(owner) or owner_label(owner, page.principal.user_id)
            ),
            "breadcrumbs": BREADCRUMBS,
        },
        active="profiles",
        title=f"{profile.name}: activity",
    )


async def _member_emails(page: ConsolePage, owners: Iterable[str]) -> dict[str, str]:
    """Connection owners' emails, for admins (who may list the workspace's members)."""
    wanted = {o for o in owners if o != "shared"}
    if not wanted or not page.allows(Role.ADMIN):
        return {}
    try:
        members = await page.call(page.services.people.members, page.principal)
    except DomainError:
        return {}
    return {m.id: m.email for m in members if m.id in wanted}


__all__ = ["router"]
