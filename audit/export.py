"""Auditor export bundles: entries with everything needed to verify them offline.

A **range** bundle (``start``..``end``) holds ``entries.jsonl`` (the exact leaf bytes, one per line),
``frontier.json`` (the perfect-subtree hashes covering [0, start)), ``consistency.json`` (a proof from
``end`` to the checkpoint, and from every earlier checkpoint size so an auditor's stored state can be
checked) and ``checkpoint.note``. A **filtered** bundle (time, agency, purpose, subject pseudonym) holds
the matching entries with one inclusion proof each in ``inclusion.jsonl``. Both carry ``manifest.note``:
a note signed by the log naming the origin, the range or filter, the checkpoint size and every file's
SHA-256. The range comes from that signature, never from counting lines.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.log import AuditLog
from audit.note import Checkpoint, split_note
from audit.verify import names_subject

MANIFEST_HEADER = "hub-audit-export/v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class EntryFilter:
    """Which entries a filtered export selects. Times are ISO 8601 UTC strings, compared as such."""

    since: str | None = None
    until: str | None = None
    agency: str | None = None
    purpose: str | None = None
    subject: str | None = None  # keyed pseudonym (hex)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.__dict__.items() if v is not None]
        return " ".join(parts) or "all"

    @classmethod
    def parse(cls, text: str) -> EntryFilter:
        if text == "all":
            return cls()
        return cls(**dict(part.split("=", 1) for part in text.split(" ")))

    def matches(self, entry: dict[str, Any]) -> bool:
        time = str(entry.get("time", ""))
        return (
            (self.since is None or time >= self.since)
            and (self.until is None or time < self.until)
            and (self.agency is None or entry.get("actor", {}).get("agency") == self.agency)
            and (self.purpose is None or entry.get("purpose") == self.purpose)
            and (self.subject is None or names_subject(entry, self.subject))
        )


def _finish(log: AuditLog, out: Path, note: str, lines: Iterable[str], files: Iterable[str]) -> Path:
    stored = log.latest_checkpoint_row()
    cosigned = note
    if stored is not None and stored.note == note:
        # Witnesses' cosignatures are further signature lines on the same note.
        cosigned = note + "".join(line for line in log.cosignature_lines(stored.id) if line not in note)
        if stored.timestamp_token is not None:
            (out / "checkpoint.tsr").write_bytes(stored.timestamp_token)
            files = (*files, "checkpoint.tsr")
    (out / "checkpoint.note").write_text(cosigned, encoding="utf-8")
    digests = [f"{name} sha256:{hashlib.sha256((out / name).read_bytes()).hexdigest()}" for name in files]
    manifest = "".join(line + "\n" for line in (MANIFEST_HEADER, log.origin, *lines, *digests))
    (out / "manifest.note").write_text(log.sign(manifest), encoding="utf-8")
    return out


def export_bundle(log: AuditLog, out: Path, start: int = 0, end: int | None = None) -> Path:
    note = log.checkpoint()
    checkpoint = Checkpoint.parse(split_note(note)[0])
    end = checkpoint.size if end is None else end
    if not 0 <= start <= end <= checkpoint.size:
        raise ValueError(f"range [{start}, {end}) is outside the checkpointed log of {checkpoint.size}")
    out.mkdir(parents=True, exist_ok=True)
    with (out / "entries.jsonl").open("wb") as handle:
        for body in log.bodies(start, end):
            handle.write(body + b"\n")
    frontier = log.tree.frontier(start)
    (out / "frontier.json").write_text(
        json.dumps({"sizes": frontier.sizes, "hashes": [_b64(h) for h in frontier.hashes]}), encoding="utf-8"
    )
    proofs = {"end": [_b64(p) for p in log.consistency_proof(end, checkpoint.size)] if end else []}
    earlier = {
        str(size): [_b64(p) for p in log.consistency_proof(size, checkpoint.size)]
        for size in log.checkpoint_sizes()
        if 0 < size < checkpoint.size
    }
    (out / "consistency.json").write_text(json.dumps({**proofs, "from_checkpoints": earlier}), encoding="utf-8")
    lines = (f"start {start}", f"end {end}", f"checkpoint {checkpoint.size}")
    return _finish(log, out, note, lines, ("entries.jsonl", "frontier.json", "consistency.json", "checkpoint.note"))


def export_filtered(log: AuditLog, out: Path, selection: EntryFilter) -> Path:
    """Entries matching ``selection``, each with its inclusion proof against one signed checkpoint."""
    note = log.checkpoint()
    checkpoint = Checkpoint.parse(split_note(note)[0])
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    with (out / "entries.jsonl").open("wb") as entries, (out / "inclusion.jsonl").open("w", encoding="utf-8") as proofs:
        for seq, body in enumerate(log.bodies(0, checkpoint.size)):
            if not selection.matches(json.loads(body)):
                continue
            entries.write(body + b"\n")
            proof = [_b64(p) for p in log.inclusion_proof(seq, checkpoint.size)]
            proofs.write(json.dumps({"seq": seq, "proof": proof}) + "\n")
            count += 1
    lines = (f"filter {selection.describe()}", f"count {count}", f"checkpoint {checkpoint.size}")
    return _finish(log, out, note, lines, ("entries.jsonl", "inclusion.jsonl", "checkpoint.note"))
