"""Auditor export bundles: a range of entries with everything needed to verify them offline.

Files: ``entries.jsonl`` (the exact leaf bytes, one per line), ``frontier.json`` (the perfect-subtree
hashes covering [0, start)), ``consistency.json`` (a proof from ``end`` to the checkpoint, and from every
earlier checkpoint size, so an auditor's stored state can be checked), ``checkpoint.note`` (the signed
checkpoint) and ``manifest.note``: a signed note naming the origin, range, checkpoint size and every
file's SHA-256. The range comes from that signature, never from counting lines.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from audit.log import AuditLog
from audit.note import Checkpoint, split_note

MANIFEST_HEADER = "hub-audit-export/v1"
FILES = ("entries.jsonl", "frontier.json", "consistency.json", "checkpoint.note")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


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
    (out / "checkpoint.note").write_text(note, encoding="utf-8")
    digests = [f"{name} sha256:{hashlib.sha256((out / name).read_bytes()).hexdigest()}" for name in FILES]
    manifest = "".join(
        line + "\n"
        for line in (
            MANIFEST_HEADER,
            log.origin,
            f"start {start}",
            f"end {end}",
            f"checkpoint {checkpoint.size}",
            *digests,
        )
    )
    (out / "manifest.note").write_text(manifest + "\n" + log.signer.signature_line(manifest), encoding="utf-8")
    return out
