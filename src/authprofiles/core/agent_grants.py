"""Agent grants: what an agent may do through the proxy, decided before any token is read.

A grant names the connections an agent may call through and the calls it may make: allow
rules of methods, an upstream host and a path glob. A rule's ``path`` is matched against
the caller's path relative to the connection's ``api_base_url``, decoded and normalised
once. A path that reads differently once normalised (a ``..`` or ``.`` segment, an encoded
slash or backslash, a second layer of percent-encoding, an empty segment) is refused
outright rather than normalised: the upstream may decode it once more, or not at all, and
either way the rule would have judged a different path from the one served.

Globs: ``*`` is one segment (or part of one: ``*.json``), ``**`` any number of whole
segments, none included. Matching is case-sensitive, as paths are (RFC 3986 section 6.2.2.1
makes only the scheme and host case-insensitive); so ``/Admin`` never matches ``/admin``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from functools import lru_cache
from urllib.parse import unquote

from authprofiles.core.errors import DomainError, FieldError, Forbidden, ValidationFailed
from authprofiles.core.injection import PathEscape

#: The most a grant may live: 30 days.
MAX_TTL_SECONDS = 30 * 24 * 3600
#: A grant's allow rules, at most.
MAX_RULES = 50
#: An agent's name, at most (the API keys' name column width).
MAX_AGENT_NAME = 200
#: The HTTP methods a rule may name (the proxy's).
RULE_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)
_PERCENT_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_GLOB_SEGMENT = re.compile(r"^[^/]*$")


@dataclass(frozen=True)
class AllowRule:
    """One call shape an agent may make: any of ``methods`` on a path matching ``path``
    (at ``host``, when given). ``approval``: each such call waits for a person."""

    methods: tuple[str, ...]
    path: str
    host: str | None = None
    approval: bool = False

    def describe(self) -> str:
        where = f" on {self.host}" if self.host else ""
        held = " (ask first)" if self.approval else ""
        return f"{'|'.join(self.methods)} {self.path}{where}{held}"

    def mismatch(self, method: str, host: str | None, path: str) -> str | None:
        """Why this rule does not cover the call, or None when it does."""
        if method not in self.methods:
            return f"method {method} is not one of {', '.join(self.methods)}"
        if self.host is not None and (host or "").lower() != self.host.lower():
            return f"host {host} is not {self.host}"
        if not path_matches(self.path, path):
            return f"path {path} does not match {self.path}"
        return None

    def as_dict(self) -> dict[str, object]:
        return {
            "methods": list(self.methods),
            "path": self.path,
            "host": self.host,
            "approval": self.approval,
        }


@dataclass(frozen=True)
class AgentGrant:
    """A grant as the proxy checks it (never the token: only its hash is stored)."""

    id: str
    workspace_id: str
    agent: str
    connection_ids: frozenset[str]
    rules: tuple[AllowRule, ...]
    expires_at: datetime
    created_at: datetime
    #: The person who made it; the agent acts for them (their access, no more).
    created_by: str | None = None
    rate_per_minute: int | None = None
    max_calls: int | None = None
    revoked_at: datetime | None = None
    calls_made: int = 0
    #: The creator's role when it was made (the agent never acts above it).
    role: str = "developer"
    metered: bool = field(init=False)
    #: Calls already found allowed, and by which rule: a grant never changes, and an
    #: agent makes the same few calls again and again.
    allowed: dict[tuple[str, str | None, str], AllowRule] = field(
        init=False, default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "metered", self.rate_per_minute is not None or self.max_calls is not None
        )

    def active_at(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True)
class HeldCall:
    """A call a rule holds for a person's approval: what they are shown and decide on.
    ``url`` holds no credential (nothing is injected yet); ``hide`` are the secrets the
    body preview must not show."""

    connection_id: str
    profile_id: str | None
    profile_name: str | None
    method: str
    url: str
    body: bytes
    hide: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentCall:
    """An agent's call as the audit log keeps it: where, and how it ended (``sent`` with
    the upstream's status, or the refusal's kind)."""

    connection_id: str
    method: str
    path: str
    outcome: str
    status: int | None = None

    @property
    def sent(self) -> bool:
        return self.outcome == "sent"


class RuleRefused(Forbidden):
    """No allow rule of the grant covers the call; ``reasons`` says, per rule, why not."""

    def __init__(self, detail: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.reasons = list(reasons)


class RateLimited(DomainError):
    """The grant's rate or budget is spent: ``retry_after`` seconds (None: never, the
    budget is used up)."""

    def __init__(self, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ApprovalRequired(Forbidden):
    """The call is held until a person approves it."""

    def __init__(self, detail: str, approval_id: str = "", approval_url: str = "") -> None:
        super().__init__(detail)
        self.approval_id = approval_id
        self.approval_url = approval_url


class AgentRefused(Forbidden):
    """An agent's credential used where only the proxy and ``/mcp`` take it."""


@lru_cache(maxsize=4096)
def normalised_path(raw: str) -> str:
    """The caller's raw path (after the connection id, still percent-encoded), decoded once,
    as ``/a/b``; :class:`PathEscape` when it would read differently once normalised."""
    if _ENCODED_SEPARATOR.search(raw):
        raise PathEscape("an agent's path may not hold an encoded slash or backslash")
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise PathEscape("an agent's path must decode to UTF-8") from None
    if _PERCENT_ESCAPE.search(decoded):
        raise PathEscape("an agent's path may not be percent-encoded twice")
    if _CONTROL.search(decoded) or "\\" in decoded or "?" in decoded or "#" in decoded:
        raise PathEscape("an agent's path may not hold control characters, '\\', '?' or '#'")
    segments = decoded.split("/")
    if segments and segments[0] == "":
        segments = segments[1:]
    if segments and segments[-1] == "":
        segments = segments[:-1]  # one trailing slash: the same resource to every glob
    for segment in segments:
        if segment == "":
            raise PathEscape("an agent's path may not hold an empty segment ('//')")
        if segment.split(";", 1)[0] in {".", ".."}:
            raise PathEscape("an agent's path may not hold '.' or '..' segments")
    return "/" + "/".join(segments)


@lru_cache(maxsize=4096)
def _pattern_segments(pattern: str) -> tuple[str, ...]:
    return tuple(s for s in pattern.strip("/").split("/") if s != "")


def path_matches(pattern: str, path: str) -> bool:
    """Whether the normalised ``path`` matches the glob ``pattern``."""
    return _match(_pattern_segments(pattern), tuple(s for s in path.split("/") if s != ""))


@lru_cache(maxsize=16384)
def _match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatchcase(path[0], head) and _match(rest, path[1:])


def decide(grant: AgentGrant, method: str, host: str | None, path: str) -> AllowRule:
    """The first rule covering ``method`` to ``host`` at the normalised ``path``;
    :class:`RuleRefused` naming each rule and why it does not, when none does."""
    call = (method, host, path)
    known = grant.allowed.get(call)
    if known is not None:
        return known
    reasons = []
    for number, rule in enumerate(grant.rules, start=1):
        why = rule.mismatch(method, host, path)
        if why is None:
            if len(grant.allowed) >= 1024:
                grant.allowed.clear()
            grant.allowed[call] = rule
            return rule
        reasons.append(f"rule {number} ({rule.describe()}): {why}")
    raise RuleRefused(
        f"the agent grant does not allow {method} {path}"
        + (f" on {host}" if host else "")
        + ": "
        + "; ".join(reasons),
        reasons,
    )


def parse_rules(raw: Sequence[object]) -> tuple[AllowRule, ...]:
    """Rules as the API receives them (``[{methods, path, host?, approval?}]``), each
    checked, every problem named by its field at once (:class:`ValidationFailed`)."""
    errors: list[FieldError] = []
    rules: list[AllowRule] = []
    if not raw:
        errors.append(FieldError("rules", "give at least one rule, e.g. GET /**"))
    if len(raw) > MAX_RULES:
        errors.append(FieldError("rules", f"at most {MAX_RULES} rules (got {len(raw)})"))
    for index, item in enumerate(raw[:MAX_RULES]):
        where = f"rules[{index}]"
        if not isinstance(item, dict):
            errors.append(FieldError(where, "must be an object {methods, path, host?, approval?}"))
            continue
        methods = item.get("methods")
        path = item.get("path")
        host = item.get("host")
        approval = item.get("approval", False)
        rule_errors = len(errors)
        if not isinstance(methods, list) or not methods:
            errors.append(FieldError(f"{where}.methods", "a list of HTTP methods, e.g. ['GET']"))
        else:
            for m_index, method in enumerate(methods):
                if not isinstance(method, str) or method not in RULE_METHODS:
                    errors.append(
                        FieldError(
                            f"{where}.methods[{m_index}]",
                            f"{method!r} is not one of {', '.join(sorted(RULE_METHODS))} "
                            "(upper case)",
                        )
                    )
        if not isinstance(path, str) or not path.startswith("/"):
            errors.append(FieldError(f"{where}.path", "a glob starting with '/', e.g. /repos/**"))
        elif len(path) > 1000 or _CONTROL.search(path) or "%" in path or "\\" in path:
            errors.append(
                FieldError(
                    f"{where}.path",
                    "at most 1000 characters of a decoded path: no '%', '\\' or control characters",
                )
            )
        elif any(s in {".", ".."} for s in _pattern_segments(path)):
            errors.append(FieldError(f"{where}.path", "may not hold '.' or '..' segments"))
        elif any("**" in s and s != "**" for s in _pattern_segments(path)):
            errors.append(FieldError(f"{where}.path", "'**' must be a whole segment"))
        if host is not None and (
            not isinstance(host, str)
            or not host
            or len(host) > 255
            or not _GLOB_SEGMENT.match(host)
            or _CONTROL.search(host)
        ):
            errors.append(FieldError(f"{where}.host", "a host name such as api.example.com"))
        if not isinstance(approval, bool):
            errors.append(FieldError(f"{where}.approval", "true or false"))
        if len(errors) == rule_errors:
            assert isinstance(methods, list) and isinstance(path, str)
            rules.append(
                AllowRule(
                    methods=tuple(dict.fromkeys(str(m) for m in methods)),
                    path=path,
                    host=host.lower() if isinstance(host, str) else None,
                    approval=bool(approval),
                )
            )
    if errors:
        raise ValidationFailed(errors)
    return tuple(rules)


def rules_of(stored: Sequence[dict[str, object]]) -> tuple[AllowRule, ...]:
    """Rules as stored (checked when the grant was made)."""
    return tuple(
        AllowRule(
            methods=tuple(str(m) for m in stored_rule["methods"]),  # type: ignore[attr-defined]
            path=str(stored_rule["path"]),
            host=str(stored_rule["host"]) if stored_rule.get("host") else None,
            approval=bool(stored_rule.get("approval", False)),
        )
        for stored_rule in stored
    )


__all__ = [
    "MAX_TTL_SECONDS",
    "AgentCall",
    "AgentGrant",
    "AgentRefused",
    "AllowRule",
    "ApprovalRequired",
    "HeldCall",
    "RateLimited",
    "RuleRefused",
    "decide",
    "normalised_path",
    "parse_rules",
    "path_matches",
    "rules_of",
]
