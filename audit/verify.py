"""Offline verifier for audit export bundles: ``python -m audit.verify BUNDLE --key VKEY [--state FILE]``.

Depends only on the standard library and ``cryptography`` (it imports ``audit.merkle`` and
``audit.note``, which obey the same rule), so an auditor can run it without the hub. It checks the
manifest's signature, every file digest, the checkpoint's signature and origin, sequence contiguity,
every entry's leaf hash, the range's root against the checkpoint through a consistency proof, and —
with ``--state`` — consistency with the checkpoint the auditor accepted before, which it then updates.
It streams entries, so memory does not grow with the bundle. Exit 0 with one line when valid; 1 with
the first failure otherwise.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from audit.merkle import Frontier, ProofError, leaf_hash, verify_consistency
from audit.note import Checkpoint, NoteError, VerifierKey, verify_note

MANIFEST_HEADER = "hub-audit-export/v1"
_SEQ = re.compile(rb'"seq":(0|[1-9][0-9]*)[,}]')


class VerificationError(Exception):
    """The bundle is not valid; the message names the first failure."""


@dataclass(frozen=True)
class Verdict:
    origin: str
    start: int
    end: int
    checkpoint_size: int
    root: bytes

    def line(self) -> str:
        return (
            f"OK {self.origin}: entries [{self.start}, {self.end}) verified against the signed checkpoint "
            f"of size {self.checkpoint_size} (root {self.root.hex()[:16]}…)"
        )


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError("malformed base64 in the bundle") from None


def _read_manifest(bundle: Path, key: VerifierKey) -> tuple[str, int, int, int, dict[str, str]]:
    try:
        body = verify_note((bundle / "manifest.note").read_text(encoding="utf-8"), key)
    except (OSError, NoteError, UnicodeDecodeError) as error:
        raise VerificationError(f"manifest: {error}") from None
    lines = body.rstrip("\n").split("\n")
    if len(lines) < 5 or lines[0] != MANIFEST_HEADER:
        raise VerificationError("manifest: not a hub audit export")
    try:
        start = int(lines[2].removeprefix("start "))
        end = int(lines[3].removeprefix("end "))
        size = int(lines[4].removeprefix("checkpoint "))
        digests = dict(line.split(" ", 1) for line in lines[5:])
    except ValueError:
        raise VerificationError("manifest: malformed range or digest lines") from None
    return lines[1], start, end, size, digests


def _check_digests(bundle: Path, digests: dict[str, str]) -> None:
    for name in ("entries.jsonl", "frontier.json", "consistency.json", "checkpoint.note"):
        if name not in digests:
            raise VerificationError(f"manifest: no digest for {name}")
        digest = hashlib.sha256()
        try:
            with (bundle / name).open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError:
            raise VerificationError(f"{name}: missing") from None
        if f"sha256:{digest.hexdigest()}" != digests[name]:
            raise VerificationError(f"{name}: digest does not match the signed manifest")


def verify_bundle(
    bundle: Path, key: VerifierKey, state: Path | None = None, expect: tuple[int, int] | None = None
) -> Verdict:
    origin, start, end, size, digests = _read_manifest(bundle, key)
    if expect is not None and expect != (start, end):
        raise VerificationError(f"bundle covers [{start}, {end}), not the requested [{expect[0]}, {expect[1]})")
    if not 0 <= start <= end <= size:
        raise VerificationError("manifest: impossible range")
    _check_digests(bundle, digests)
    try:
        checkpoint = Checkpoint.parse(verify_note((bundle / "checkpoint.note").read_text(encoding="utf-8"), key))
    except NoteError as error:
        raise VerificationError(f"checkpoint: {error}") from None
    if checkpoint.origin != origin or checkpoint.origin != key.name:
        raise VerificationError("checkpoint: from another log (origin mismatch)")
    if checkpoint.size != size:
        raise VerificationError("checkpoint: size differs from the manifest")

    try:
        raw = json.loads((bundle / "frontier.json").read_text(encoding="utf-8"))
        frontier = Frontier(list(raw["sizes"]), [_b64(h) for h in raw["hashes"]])
    except (KeyError, TypeError, ValueError, ProofError) as error:
        raise VerificationError(f"frontier: malformed ({error})") from None
    if frontier.size != start:
        raise VerificationError("frontier: does not cover [0, start)")

    expected = start
    with (bundle / "entries.jsonl").open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                raise VerificationError(f"entries: entry {expected} is not newline-terminated")
            body = line[:-1]
            found = _SEQ.search(body)
            if found is None or int(found.group(1)) != expected:
                raise VerificationError(
                    f"entries: sequence broken at position {expected - start} (expected {expected})"
                )
            frontier.append(leaf_hash(body))
            expected += 1
    if expected != end:
        raise VerificationError(f"entries: {expected - start} entries, the signed manifest says {end - start}")

    proofs = json.loads((bundle / "consistency.json").read_text(encoding="utf-8"))
    try:
        if end == size:
            if proofs.get("end"):
                raise VerificationError("consistency.json: a proof where none belongs (range ends at the checkpoint)")
            if frontier.root() != checkpoint.root:
                raise VerificationError("entries: root does not match the signed checkpoint")
        elif end > 0:
            verify_consistency(end, size, [_b64(p) for p in proofs["end"]], frontier.root(), checkpoint.root)
    except ProofError as error:
        raise VerificationError(f"entries: not consistent with the signed checkpoint ({error})") from None

    if state is not None:
        _check_state(state, checkpoint, proofs.get("from_checkpoints", {}))
    return Verdict(origin, start, end, size, checkpoint.root)


def _check_state(state: Path, checkpoint: Checkpoint, proofs: dict[str, list[str]]) -> None:
    if state.exists():
        try:
            held = json.loads(state.read_text(encoding="utf-8"))
            held_origin, held_size, held_root = held["origin"], int(held["size"]), _b64(held["root"])
        except (KeyError, ValueError, TypeError):
            raise VerificationError("state: malformed state file") from None
        if held_origin != checkpoint.origin:
            raise VerificationError("state: the bundle is from another log")
        if held_size > checkpoint.size:
            raise VerificationError(f"state: stale bundle (checkpoint {checkpoint.size} < accepted {held_size})")
        if held_size == checkpoint.size and held_root != checkpoint.root:
            raise VerificationError("state: same size, different root: the log forked")
        if 0 < held_size < checkpoint.size:
            if str(held_size) not in proofs:
                raise VerificationError(f"state: no consistency proof from the accepted size {held_size}")
            try:
                verify_consistency(
                    held_size, checkpoint.size, [_b64(p) for p in proofs[str(held_size)]], held_root, checkpoint.root
                )
            except ProofError as error:
                raise VerificationError(f"state: log rewritten since the accepted checkpoint ({error})") from None
    state.write_text(
        json.dumps(
            {"origin": checkpoint.origin, "size": checkpoint.size, "root": base64.b64encode(checkpoint.root).decode()}
        ),
        encoding="utf-8",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit.verify", description=__doc__.split("\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--key", required=True, help="the log's verifier key (name+id+key), or a file holding it")
    parser.add_argument(
        "--state", type=Path, help="JSON file with the checkpoint accepted last time; updated on success"
    )
    parser.add_argument("--start", type=int, help="the range you asked for (checked against the signed manifest)")
    parser.add_argument("--end", type=int)
    args = parser.parse_args(argv)
    try:
        key_text = Path(args.key).read_text(encoding="utf-8") if Path(args.key).is_file() else args.key
        key = VerifierKey.parse(key_text)
        expect = (args.start, args.end) if args.start is not None and args.end is not None else None
        verdict = verify_bundle(args.bundle, key, args.state, expect)
    except (VerificationError, NoteError) as error:
        print(f"INVALID: {error}")
        return 1
    print(verdict.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
