"""The consent ledger: grants and withdrawals, with their evidence, per resident and agreement.

Types: ``general``; ``separate_sensitive`` (PIPL 29); ``separate_provision`` (PIPL 23, provision to another
handler); ``guardian`` (PIPL 31, a subject under 14). Each event keeps the hash of the notice text shown,
the channel, the time and who recorded it. Withdrawal is one call, like granting (PIPL 15), and
counts from its moment: the current state of a consent is its latest event. A consent names the
agreement scope version it was given for; after a scope change it no longer counts.
The resident is identified by their keyed pseudonym only.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from audit.entries import Actor, EntryDraft
from keys.sql import fetch_all, json_value
from policies.errors import PolicyInputError
from policies.purposes import purpose
from policies.tables import ConsentEvent

ConsentType = Literal["general", "separate_sensitive", "separate_provision", "guardian"]
CONSENT_TYPES = ("general", "separate_sensitive", "separate_provision", "guardian")
CHANNELS = ("counter", "app", "web", "paper")
AuditSink = Callable[[EntryDraft], object]


class ConsentState(NamedTuple):
    """The latest event of one (agreement, type) consent; hashable, so a remembered decision can name the
    consents it was taken on (policies.decide)."""

    agreement: str
    type: str
    action: str
    purposes: tuple[str, ...]
    scope_version: int
    at: int

    def policy_input(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": "granted" if self.action == "grant" else "withdrawn",
            "agreement": self.agreement,
            "purposes": list(self.purposes),
            "scope_version": self.scope_version,
            "granted_at": self.at,
        }


# Every decision under an agreement reads the subject's consents: one constant statement run by the driver
# (keys.sql.fetch_all), not an ORM query built per call nor a Core statement. The ORM's statement building,
# session and identity map took 24% of a person view's CPU (py-spy), and SQLAlchemy's execution machinery
# alone about 30 µs a call, more than the database's work for a handful of rows. All the subject's events are
# read and the agreements picked in Python: a resident has a few, and an expanding "IN (...)" parameter made
# SQLAlchemy rewrite the statement's text on every call.
_CURRENT = (
    "SELECT agreement_id, type, action, purposes, scope_version, at FROM consent_event WHERE subject = ? ORDER BY id"
)


def notice_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


class ConsentLedger:
    def __init__(
        self, engine: Engine, audit: AuditSink | None = None, clock: Callable[[], int] = lambda: int(time.time())
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock

    def _event(
        self,
        action: str,
        subject: str,
        agreement_id: str,
        kind: str,
        purposes: Sequence[str],
        scope_version: int,
        notice: str,
        channel: str,
        actor: Actor,
    ) -> ConsentEvent:
        if kind not in CONSENT_TYPES:
            raise PolicyInputError(f"unknown consent type {kind!r}; expected one of {', '.join(CONSENT_TYPES)}")
        if channel not in CHANNELS:
            raise PolicyInputError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
        for code in purposes:
            purpose(code)
        event = ConsentEvent(
            subject=subject,
            agreement_id=agreement_id,
            type=kind,
            action=action,
            purposes=sorted(set(purposes)),
            scope_version=scope_version,
            notice_hash=notice,
            channel=channel,
            actor=actor.principal,
            at=self.clock(),
        )
        with Session(self.engine) as session:
            session.add(event)
            session.commit()
            session.refresh(event)
        if self.audit is not None:
            self.audit(
                EntryDraft(
                    type="consent.change",
                    actor=actor,
                    subject=subject,
                    detail={"action": action, "consent_type": kind, "agreement": agreement_id, "channel": channel},
                )
            )
        return event

    def grant(
        self,
        subject: str,
        agreement_id: str,
        kind: ConsentType,
        purposes: Sequence[str],
        scope_version: int,
        notice_text: str,
        channel: str,
        actor: Actor,
    ) -> ConsentEvent:
        return self._event(
            "grant", subject, agreement_id, kind, purposes, scope_version, notice_hash(notice_text), channel, actor
        )

    def withdraw(self, subject: str, agreement_id: str, kind: ConsentType, channel: str, actor: Actor) -> ConsentEvent:
        current = self.current(subject, [agreement_id])
        held = next((c for c in current if c["type"] == kind), None)
        scope = int(held["scope_version"]) if held else 0
        return self._event("withdraw", subject, agreement_id, kind, [], scope, "", channel, actor)

    def latest(self, subject: str, agreement_ids: Sequence[str]) -> list[ConsentState]:
        """The latest event of each (agreement, type) consent of ``subject``, in the order they were given."""
        if not agreement_ids:
            return []
        wanted = set(agreement_ids)
        latest: dict[tuple[str, str], Any] = {}
        for event in fetch_all(self.engine, _CURRENT, (subject,)):
            if event[0] in wanted:
                latest[(event[0], event[1])] = event
        return [
            ConsentState(agreement, kind, action, tuple(json_value(purposes)), scope_version, at)
            for agreement, kind, action, purposes, scope_version, at in latest.values()
        ]

    def current(self, subject: str, agreement_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The latest state of each (agreement, type) consent of ``subject``, as the policy reads it."""
        return [state.policy_input() for state in self.latest(subject, agreement_ids)]

    def history(self, subject: str) -> list[ConsentEvent]:
        with Session(self.engine) as session:
            return list(
                session.exec(
                    select(ConsentEvent).where(ConsentEvent.subject == subject).order_by(col(ConsentEvent.id))
                ).all()
            )
