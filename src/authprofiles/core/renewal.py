"""When the background refresher renews a token: before it expires, at a time spread at
random so that tokens issued together do not all come due together.

A token is renewed ``lead_seconds`` before it expires (the refresher's lead plus the
skew within which a caller would refresh it anyway), and a further random part of
``jitter`` (a fraction of its lifetime) earlier. A million one-hour tokens issued in
the same minute then come due over six minutes (a jitter of 0.1) rather than in the same
minute, and the spread grows with each renewal, since every new token's time is drawn
again; a long-lived token is spread over a longer time. A token that lives less than
twice the lead is renewed halfway through its life at the latest: renewed at the lead,
the new token would be due again the moment it was stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: The largest jitter: a token is never due before it was issued.
MAX_JITTER = 0.5


@dataclass(frozen=True)
class RenewalSchedule:
    lead_seconds: float
    #: A fraction of the token's lifetime, from 0 up to ``MAX_JITTER``.
    jitter: float

    def renew_at(
        self, expires_at: datetime | None, now: datetime, spread: float
    ) -> datetime | None:
        """When to renew a token that expires at ``expires_at``, issued ``now``; None when
        it never expires. ``spread``, from 0 up to 1, picks where in the jitter it falls
        (the caller draws it at random)."""
        if expires_at is None:
            return None
        lifetime = max((expires_at - now).total_seconds(), 0.0)
        spread = min(max(spread, 0.0), 1.0)
        jitter = min(max(self.jitter, 0.0), MAX_JITTER)
        early = min(self.lead_seconds, lifetime / 2) + spread * jitter * lifetime
        return expires_at - timedelta(seconds=early)


#: The settings' defaults (a lead of 300 s, a skew of 60 s, a jitter of 0.1).
DEFAULT_SCHEDULE = RenewalSchedule(lead_seconds=360.0, jitter=0.1)

__all__ = ["DEFAULT_SCHEDULE", "MAX_JITTER", "RenewalSchedule"]
