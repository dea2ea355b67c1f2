"""An ablation for bench/api.py, never a way to serve the hub: the hub's app with its audit appends answered
at once, unrecorded (no entry, no access index, no use counters, no commit).

The person view still authenticates, decides, decrypts, masks and builds its audit entry; only the durable
append is gone. Loaded beside the hub and the unprotected baseline (``bench/api.py --ablate-audit``), it splits
the measured ratio into what the protection costs and what the durable evidence costs on top.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from fastapi import FastAPI

from audit.entries import EntryDraft, SealedEntry, utc_stamp
from audit.log import AuditLog, Effect
from hub.api.app import create_app as create_hub_app

_numbers = itertools.count()


async def _unrecorded(self: AuditLog, drafts: Sequence[tuple[EntryDraft, Effect | None]]) -> list[SealedEntry]:
    stamp = utc_stamp()
    return [SealedEntry(next(_numbers), stamp, b"") for _ in drafts]


def create_app() -> FastAPI:
    AuditLog.append_all_async = _unrecorded  # type: ignore[method-assign]  # this process only, for the ablation
    return create_hub_app()
