"""A witness: holds a log to its history and cosigns checkpoints that extend it.

Run by an agency or an external auditor, it keeps the latest checkpoint it accepted per log origin.
A newer checkpoint is cosigned only with a valid consistency proof from the size the witness holds; an
older, forked or unprovable one is refused. The shape follows C2SP tlog-witness ``add-checkpoint``: the
caller states the old size its proof starts from, and a mismatch is answered with the size the witness
actually holds (a conflict the caller resolves by proving from that size). Like the verifier it
depends only on the standard library and ``cryptography``.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.merkle import ProofError, verify_consistency
from audit.note import COSIGNATURE_V1, Checkpoint, NoteError, NoteSigner, VerifierKey, verify_note


class WitnessRefusal(Exception):
    """The witness will not cosign; the message says why."""


class SizeConflict(WitnessRefusal):
    """The caller proved from a size the witness does not hold; retry from ``held_size``."""

    def __init__(self, held_size: int) -> None:
        super().__init__(f"witness holds size {held_size}; prove consistency from there")
        self.held_size = held_size


class Witness:
    def __init__(self, name: str, private: Ed25519PrivateKey, state: Path, trusted: Sequence[VerifierKey]) -> None:
        self.signer = NoteSigner(name, private, COSIGNATURE_V1)
        self.state = state
        self.trusted = {key.name: key for key in trusted}

    @property
    def verifier(self) -> VerifierKey:
        return self.signer.verifier

    def _load(self) -> dict[str, dict[str, object]]:
        if not self.state.exists():
            return {}
        data: dict[str, dict[str, object]] = json.loads(self.state.read_text(encoding="utf-8"))
        return data

    def _save(self, data: dict[str, dict[str, object]]) -> None:
        self.state.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.state.parent, prefix=self.state.name + ".")
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(self.state)

    def held(self, origin: str) -> tuple[int, bytes] | None:
        entry = self._load().get(origin)
        if entry is None:
            return None
        return int(str(entry["size"])), base64.b64decode(str(entry["root"]))

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str, now: int | None = None) -> str:
        """Verify and, if it extends what this witness holds, cosign; returns the cosignature line."""
        origin = note.split("\n", 1)[0]
        key = self.trusted.get(origin)
        if key is None:
            raise WitnessRefusal(f"unknown log {origin!r}")
        try:
            checkpoint = Checkpoint.parse(verify_note(note, key))
        except NoteError as error:
            raise WitnessRefusal(f"checkpoint does not verify: {error}") from None
        state = self._load()
        held = self.held(origin)
        held_size, held_root = held if held is not None else (0, b"")
        if old_size != held_size:
            raise SizeConflict(held_size)
        if checkpoint.size < held_size:
            raise WitnessRefusal(f"older checkpoint ({checkpoint.size} < {held_size}): refused")
        if checkpoint.size == held_size and held_size and checkpoint.root != held_root:
            raise WitnessRefusal("same size, different root: the log forked")
        if 0 < held_size < checkpoint.size:
            try:
                verify_consistency(held_size, checkpoint.size, proof, held_root, checkpoint.root)
            except ProofError as error:
                raise WitnessRefusal(f"not consistent with the checkpoint this witness holds: {error}") from None
        state[origin] = {"size": checkpoint.size, "root": base64.b64encode(checkpoint.root).decode()}
        self._save(state)
        body = checkpoint.body()
        return self.signer.cosignature_line(body, int(time.time()) if now is None else now)
