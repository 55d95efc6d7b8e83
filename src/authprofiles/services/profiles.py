"""Profile use cases: create, change, read, delete, export and import."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from authprofiles.core.audit import Action, AuditEntry, DetailValue, Target
from authprofiles.core.errors import AlreadyExists, FieldError, ValidationFailed
from authprofiles.core.ports import AuditTrail, DiscardAudit, TokenCache
from authprofiles.core.profiles import IMMUTABLE_FIELDS, SECRET_FIELDS, Profile, ProfileDefinition
from authprofiles.core.validation import check_profile_input, missing_fields
from authprofiles.services.access import Principal, Role, require_role
from authprofiles.services.oauth_settings import require_configured
from authprofiles.services.revocation import RevocationReport, revoke_connection
from authprofiles.store.db import ConstraintViolated
from authprofiles.store.profiles import UnreadableProfile

if TYPE_CHECKING:
    from authprofiles.oauth.engine import OAuthEngine
    from authprofiles.settings import Settings
    from authprofiles.store.connections import ConnectionStore
    from authprofiles.store.db import Database, UnitOfWork
    from authprofiles.store.profiles import ProfileStore

EXPORT_VERSION = 1


def public_view(profile: Profile, callback_url: str) -> dict[str, Any]:
    """What any reader may see: secrets reduced to whether they are set."""
    data = profile.model_dump(mode="json", exclude=set(SECRET_FIELDS))
    data["client_secret_set"] = profile.client_secret is not None
    data["private_key_set"] = profile.private_key is not None
    data["password_set"] = profile.password is not None
    data["additional_fields"] = [
        {"key": f.key, "value_set": bool(f.value)} for f in profile.additional_fields
    ]
    data["authorization_fields"] = [
        {"type": f.type.value, "key": f.key, "value_set": f.value is not None}
        for f in profile.authorization_fields
    ]
    data["callback_url"] = callback_url
    data["status"] = profile.status.value
    data["missing_fields"] = missing_fields(profile)
    return data


def export_document(profile: Profile, *, include_secrets: bool) -> dict[str, Any]:
    """One profile as exported. A profile whose secrets cannot be decrypted goes without
    them whatever was asked: its stand-in values are not its secrets."""
    definition = profile.definition()
    data = definition.model_dump(mode="json", exclude_defaults=False)
    if not include_secrets or isinstance(profile, UnreadableProfile):
        for field in SECRET_FIELDS:
            data.pop(field, None)
        data["additional_fields"] = [{"key": f.key} for f in definition.additional_fields]
        data["authorization_fields"] = [
            {"type": f.type.value, "key": f.key} for f in definition.authorization_fields
        ]
    return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True)
class ImportResult:
    name: str
    action: str  # "created" or "updated"
    status: str


class ProfileService:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        profile_store: ProfileStore,
        connection_store: ConnectionStore,
        oauth: OAuthEngine,
        token_cache: TokenCache,
        audit: AuditTrail | None = None,
    ) -> None:
        self.settings = settings
        self.audit: AuditTrail = audit or DiscardAudit()
        self.db = db
        self.profile_store = profile_store
        self.connection_store = connection_store
        self.oauth = oauth
        self.token_cache = token_cache

    @property
    def callback_url(self) -> str:
        return self.settings.callback_url

    # -- reading -----------------------------------------------------------------
    def list(
        self,
        principal: Principal,
        *,
        name: str | None = None,
        after: tuple[str, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[Profile]:
        """By name; a page of ``limit`` after the ``(name, id)`` key ``after`` when given."""
        require_role(principal, Role.VIEWER)
        with self.db.read() as session:
            return self.profile_store.list(
                session, principal.workspace_id, name=name, after=after, limit=limit
            )

    def get(self, principal: Principal, profile_id: str) -> Profile:
        require_role(principal, Role.VIEWER)
        with self.db.read() as session:
            return self.profile_store.get(session, principal.workspace_id, profile_id)

    def get_configured(self, principal: Principal, profile_id: str) -> Profile:
        """A profile that can be used: every mandatory field set, else a 409 naming them."""
        with self.db.read() as session:
            profile = self.profile_store.get(session, principal.workspace_id, profile_id)
        return require_configured(profile)

    # -- writing -----------------------------------------------------------------
    def create(
        self, principal: Principal, data: dict[str, Any], *, allow_incomplete: bool = False
    ) -> Profile:
        require_role(principal, Role.ADMIN)
        definition = check_profile_input(data, require_complete=not allow_incomplete)
        return self._insert(principal, definition)

    def _insert(self, principal: Principal, definition: ProfileDefinition) -> Profile:
        workspace_id = principal.workspace_id
        name_taken = AlreadyExists(
            [
                FieldError(
                    "name",
                    f"a profile named {definition.name!r} already exists; choose another name",
                )
            ]
        )
        store = self.profile_store
        try:
            with self.db.session() as session:
                if store.name_taken(session, workspace_id, definition.name):
                    raise name_taken
                created = store.add(session, workspace_id, definition)
                self._record(session, principal, Action.PROFILE_CREATED, created)
                return created
        except ConstraintViolated:
            # Two creators raced past the check and the unique constraint decided; any other
            # constraint that failed is not the caller's doing.
            with self.db.read() as session:
                if store.find_by_name(session, workspace_id, definition.name) is not None:
                    raise name_taken from None
            raise

    def update(
        self,
        principal: Principal,
        profile_id: str,
        patch: dict[str, Any],
        *,
        allow_incomplete: bool = False,
    ) -> Profile:
        require_role(principal, Role.ADMIN)
        with self.db.session() as session:
            current = self.profile_store.get(session, principal.workspace_id, profile_id, lock=True)
            definition = self._merged(current, patch, allow_incomplete=allow_incomplete)
            updated = self.profile_store.replace(session, current, definition)
            self._record(
                session,
                principal,
                Action.PROFILE_UPDATED,
                updated,
                # Which fields, never their values.
                {"fields": ",".join(sorted(patch))[:500]},
            )
            return updated

    def _record(
        self,
        session: UnitOfWork,
        principal: Principal,
        action: Action,
        profile: Profile,
        detail: dict[str, DetailValue] | None = None,
    ) -> None:
        target = Target("profile", profile.id, profile.name)
        self.audit.record(
            AuditEntry.by(principal, action, target, profile_id=profile.id, detail=detail),
            session,
        )

    def _merged(
        self, current: Profile, patch: dict[str, Any], *, allow_incomplete: bool
    ) -> ProfileDefinition:
        errors = [
            FieldError(
                field,
                f"{field} cannot be changed after creation; create a new profile instead",
            )
            for field in sorted(IMMUTABLE_FIELDS)
            if field in patch and _stripped(patch[field]) != getattr(current, field)
        ]
        if errors:
            raise ValidationFailed(errors)
        merged = current.definition().model_dump(mode="json")
        merged.update(patch)
        # Secrets are write-only: a field sent back without its value keeps the stored one.
        merged["additional_fields"] = _keep_secret_values(
            patch.get("additional_fields"),
            {f.key: f.value for f in current.additional_fields},
            key=lambda item: item.get("key"),
            fallback=merged["additional_fields"],
        )
        merged["authorization_fields"] = _keep_secret_values(
            patch.get("authorization_fields"),
            {(f.type.value, f.key): f.value for f in current.authorization_fields},
            key=lambda item: (item.get("type"), item.get("key")),
            fallback=merged["authorization_fields"],
        )
        # A change may not make a configured profile incomplete unless asked; a profile that
        # is still incomplete (an import without secrets) can be edited step by step.
        was_complete = not missing_fields(current)
        # The name cannot change, so it is not judged again: one stored before a rule was
        # added (a control character, say) must not make the profile uneditable for good.
        merged["name"] = "stored-name"
        definition = check_profile_input(
            merged, require_complete=was_complete and not allow_incomplete
        )
        return definition.model_copy(update={"name": current.name})

    def delete(self, principal: Principal, profile_id: str) -> RevocationReport:
        """Delete the profile and everything it owned: its connections' tokens are revoked
        first where the identity provider can (RFC 7009), then the rows go."""
        require_role(principal, Role.ADMIN)
        with self.db.read() as session:
            # A profile whose secrets cannot be decrypted can still be deleted; its tokens
            # cannot be revoked without them, and the report says so.
            profile = self.profile_store.get(
                session, principal.workspace_id, profile_id, strict=False
            )
            connections = [
                self.connection_store.to_domain(r)
                for r in self.connection_store.for_profile(session, profile_id)
            ]
        report = RevocationReport()
        if isinstance(profile, UnreadableProfile):
            report.errors.append(f"tokens were not revoked: {profile.failing_reason}")
        else:
            for connection in connections:
                report.add(revoke_connection(self.oauth, profile, connection, self.callback_url))
        with self.db.session() as session:
            # Connections and pending authorizations go with it (ON DELETE CASCADE).
            self.profile_store.delete(session, profile)
            self._record(
                session,
                principal,
                Action.PROFILE_DELETED,
                profile,
                {"connections": len(connections)},
            )
        for connection in connections:
            self.token_cache.forget(connection.id)
        return report

    # -- export and import --------------------------------------------------------
    def export(
        self,
        principal: Principal,
        *,
        include_secrets: bool,
        profiles: builtins.list[Profile] | None = None,
    ) -> dict[str, Any]:
        """Every profile of the workspace (``profiles``: the ones the caller just listed)."""
        require_role(principal, Role.ADMIN if include_secrets else Role.VIEWER)
        profiles = self.list(principal) if profiles is None else profiles
        return {
            "version": EXPORT_VERSION,
            "secrets_included": include_secrets,
            "profiles": [export_document(p, include_secrets=include_secrets) for p in profiles],
        }

    def import_documents(
        self,
        principal: Principal,
        document: dict[str, Any],
        *,
        on_progress: Callable[[str], None] | None = None,
    ) -> builtins.list[ImportResult]:
        """All or nothing: every profile is checked first, then all are written in one go.

        A profile whose name exists is updated (its stored secrets kept unless the file has
        them); a new one may lack secrets and is then stored as ``not_configured``.
        """
        require_role(principal, Role.ADMIN)
        items = document.get("profiles")
        if not isinstance(items, list):
            raise ValidationFailed([FieldError("profiles", "the file has no list of profiles")])
        errors: builtins.list[FieldError] = []
        names: set[str] = set()
        results: builtins.list[ImportResult] = []
        with self.db.session() as session:
            store = self.profile_store
            planned: builtins.list[tuple[Profile | None, ProfileDefinition]] = []
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    errors.append(FieldError(f"profiles[{index}]", "must be a mapping"))
                    continue
                name = item.get("name")
                if name in names:
                    errors.append(FieldError(f"profiles[{index}].name", f"{name!r} is repeated"))
                    continue
                names.add(str(name))
                try:
                    existing = (
                        store.find_by_name(session, principal.workspace_id, name)
                        if isinstance(name, str)
                        else None
                    )
                    if existing is not None:
                        definition = self._merged(existing, item, allow_incomplete=True)
                    else:
                        definition = check_profile_input(item, require_complete=False)
                    planned.append((existing, definition))
                except ValidationFailed as exc:
                    errors.extend(
                        FieldError(f"profiles[{index}].{e.field}", e.message) for e in exc.errors
                    )
            if errors:
                raise ValidationFailed(errors)
            for existing, definition in planned:
                if existing is None:
                    saved = store.add(session, principal.workspace_id, definition)
                    action = "created"
                else:
                    saved = store.replace(session, existing, definition)
                    action = "updated"
                self._record(
                    session,
                    principal,
                    Action.PROFILE_CREATED if existing is None else Action.PROFILE_UPDATED,
                    saved,
                    {"imported": True},
                )
                results.append(ImportResult(saved.name, action, saved.status.value))
                if on_progress:
                    on_progress(saved.name)
        return results


def _stripped(value: Any) -> Any:
    # As the draft reads text: surrounding white space is not part of a value.
    return value.strip() if isinstance(value, str) else value


def _keep_secret_values(
    items: Any,
    stored: dict[Any, str | None],
    *,
    key: Callable[[dict[str, Any]], Any],
    fallback: Any,
) -> Any:
    if not isinstance(items, list):
        return fallback
    out = []
    for item in items:
        if isinstance(item, dict) and "value" not in item and key(item) in stored:
            item = {**item, "value": stored[key(item)]}
        out.append(item)
    return out
