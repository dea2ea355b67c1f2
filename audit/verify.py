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
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from audit.merkle import Frontier, ProofError, leaf_hash, verify_consistency, verify_inclusion
from audit.note import Checkpoint, NoteError, VerifierKey, verify_note

MANIFEST_HEADER = "hub-audit-export/v1"


class VerificationError(Exception):
    """The bundle is not valid; the message names the first failure."""


@dataclass(frozen=True)
class Verdict:
    origin: str
    start: int
    end: int
    checkpoint_size: int
    root: bytes
    selection: str | None = None
    timestamp: str | None = None

    def line(self) -> str:
        what = (
            f"{self.end} entries matching '{self.selection}'"
            if self.selection is not None
            else f"entries [{self.start}, {self.end})"
        )
        stamp = f"; {self.timestamp}" if self.timestamp else ""
        return (
            f"OK {self.origin}: {what} verified against the signed checkpoint "
            f"of size {self.checkpoint_size} (root {self.root.hex()[:16]}…){stamp}"
        )


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError("malformed base64 in the bundle") from None


@dataclass(frozen=True)
class Manifest:
    origin: str
    fields: dict[str, str]
    checkpoint_size: int

    def number(self, name: str) -> int:
        try:
            return int(self.fields[name])
        except (KeyError, ValueError):
            raise VerificationError(f"manifest: no valid {name!r} line") from None


def _read_manifest(bundle: Path, key: VerifierKey) -> Manifest:
    try:
        body = verify_note((bundle / "manifest.note").read_text(encoding="utf-8"), key)
    except (OSError, NoteError, UnicodeDecodeError) as error:
        raise VerificationError(f"manifest: {error}") from None
    lines = body.rstrip("\n").split("\n")
    if len(lines) < 3 or lines[0] != MANIFEST_HEADER:
        raise VerificationError("manifest: not a hub audit export")
    fields: dict[str, str] = {}
    for line in lines[2:]:
        name, _, value = line.partition(" ")
        if not value or name in fields:
            raise VerificationError("manifest: malformed line")
        fields[name] = value
    manifest = Manifest(lines[1], fields, 0)
    return Manifest(lines[1], fields, manifest.number("checkpoint"))


def _check_digests(bundle: Path, digests: dict[str, str], names: tuple[str, ...]) -> None:
    for name in names:
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


@dataclass(frozen=True)
class TrustedTsa:
    """The TSA certificate and roots an auditor trusts, as PEM files."""

    certificate: Path
    roots: Path


def _timestamp(bundle: Path, manifest: Manifest, checkpoint: Checkpoint, tsa: TrustedTsa | None) -> str | None:
    """Check the checkpoint's RFC 3161 token when the auditor names a TSA; say so when it is unchecked."""
    present = "checkpoint.tsr" in manifest.fields
    if tsa is None:
        return "RFC 3161 token present, not checked (pass --tsa-cert and --tsa-root)" if present else None
    if not present:
        raise VerificationError("timestamp: the bundle carries no RFC 3161 token")
    from audit.timestamp import TimestampError, load_certificates, verify_timestamp  # needs rfc3161-client

    try:
        when = verify_timestamp(
            (bundle / "checkpoint.tsr").read_bytes(),
            checkpoint.body().encode(),
            load_certificates(tsa.certificate)[0],
            load_certificates(tsa.roots),
        )
    except (TimestampError, OSError, ValueError) as error:
        raise VerificationError(f"timestamp: {error}") from None
    return f"time-stamped by the TSA at {when.isoformat()}"


def _checkpoint(
    bundle: Path, key: VerifierKey, manifest: Manifest, witnesses: Sequence[VerifierKey] = ()
) -> Checkpoint:
    try:
        note = (bundle / "checkpoint.note").read_text(encoding="utf-8")
        checkpoint = Checkpoint.parse(verify_note(note, key))
    except (NoteError, OSError) as error:
        raise VerificationError(f"checkpoint: {error}") from None
    for witness in witnesses:
        try:
            verify_note(note, witness)
        except NoteError as error:
            raise VerificationError(f"checkpoint: witness {witness.name}: {error}") from None
    if checkpoint.origin != manifest.origin or checkpoint.origin != key.name:
        raise VerificationError("checkpoint: from another log (origin mismatch)")
    if checkpoint.size != manifest.checkpoint_size:
        raise VerificationError("checkpoint: size differs from the manifest")
    return checkpoint


def verify_bundle(
    bundle: Path,
    key: VerifierKey,
    state: Path | None = None,
    expect: tuple[int, int] | None = None,
    tsa: TrustedTsa | None = None,
    witnesses: Sequence[VerifierKey] = (),
) -> Verdict:
    """Verify a bundle; ``witnesses`` are cosigners whose valid cosignature the auditor requires."""
    manifest = _read_manifest(bundle, key)
    if "checkpoint.tsr" in manifest.fields:
        _check_digests(bundle, manifest.fields, ("checkpoint.tsr",))
    if "filter" in manifest.fields:
        if expect is not None:
            raise VerificationError("a filtered bundle has no range; do not pass --start/--end")
        verdict = _verify_filtered(bundle, key, manifest, state, witnesses)
        checkpoint = Checkpoint(verdict.origin, verdict.checkpoint_size, verdict.root)
        return replace(verdict, timestamp=_timestamp(bundle, manifest, checkpoint, tsa))
    origin, size = manifest.origin, manifest.checkpoint_size
    start, end = manifest.number("start"), manifest.number("end")
    if expect is not None and expect != (start, end):
        raise VerificationError(f"bundle covers [{start}, {end}), not the requested [{expect[0]}, {expect[1]})")
    if not 0 <= start <= end <= size:
        raise VerificationError("manifest: impossible range")
    _check_digests(bundle, manifest.fields, ("entries.jsonl", "frontier.json", "consistency.json", "checkpoint.note"))
    checkpoint = _checkpoint(bundle, key, manifest, witnesses)

    try:
        raw = json.loads((bundle / "frontier.json").read_text(encoding="utf-8"))
        frontier = Frontier(list(raw["sizes"]), [_b64(h) for h in raw["hashes"]])
    except (KeyError, TypeError, ValueError, ProofError) as error:
        raise VerificationError(f"frontier: malformed ({error})") from None
    if frontier.size != start:
        raise VerificationError("frontier: does not cover [0, start)")

    expected = _stream_entries(bundle / "entries.jsonl", start, frontier)
    if expected != end:
        raise VerificationError(f"entries: {expected - start} entries, the signed manifest says {end - start}")

    try:
        proofs = json.loads((bundle / "consistency.json").read_text(encoding="utf-8"))
        end_proof = [_b64(p) for p in proofs["end"]]
        earlier = dict(proofs.get("from_checkpoints", {}))
    except (KeyError, TypeError, ValueError):
        raise VerificationError("consistency.json: malformed") from None
    try:
        if end == size:
            if end_proof:
                raise VerificationError("consistency.json: a proof where none belongs (range ends at the checkpoint)")
            if frontier.root() != checkpoint.root:
                raise VerificationError("entries: root does not match the signed checkpoint")
        elif end > 0:
            verify_consistency(end, size, end_proof, frontier.root(), checkpoint.root)
    except ProofError as error:
        raise VerificationError(f"entries: not consistent with the signed checkpoint ({error})") from None

    stamp = _timestamp(bundle, manifest, checkpoint, tsa)
    if state is not None:
        _check_state(state, checkpoint, earlier)
    return Verdict(origin, start, end, size, checkpoint.root, timestamp=stamp)


def _verify_filtered(
    bundle: Path, key: VerifierKey, manifest: Manifest, state: Path | None, witnesses: Sequence[VerifierKey]
) -> Verdict:
    """Every listed entry is in the signed log at its sequence number and matches the signed filter.

    Inclusion proofs show that what is listed is genuine; they cannot show that nothing matching was
    left out. Completeness needs a range bundle (docs/audit.md).
    """
    _check_digests(bundle, manifest.fields, ("entries.jsonl", "inclusion.jsonl", "checkpoint.note"))
    checkpoint = _checkpoint(bundle, key, manifest, witnesses)
    selection = manifest.fields["filter"]
    wanted = {} if selection == "all" else dict(part.split("=", 1) for part in selection.split(" "))
    count, previous = 0, -1
    with (bundle / "entries.jsonl").open("rb") as entries, (bundle / "inclusion.jsonl").open("rb") as proofs:
        for line in entries:
            proof_line = proofs.readline()
            if not line.endswith(b"\n") or not proof_line:
                raise VerificationError(f"entries: entry {count} has no inclusion proof")
            body = line[:-1]
            try:
                entry, proof = json.loads(body), json.loads(proof_line)
                seq = int(proof["seq"])
                path = [_b64(p) for p in proof["proof"]]
            except (ValueError, KeyError, TypeError):
                raise VerificationError(f"entries: entry {count} is malformed") from None
            if entry.get("seq") != seq or seq <= previous:
                raise VerificationError(f"entries: sequence numbers out of order at entry {count}")
            if not _matches(entry, wanted):
                raise VerificationError(f"entries: entry {seq} does not match the signed filter")
            try:
                verify_inclusion(seq, checkpoint.size, leaf_hash(body), path, checkpoint.root)
            except ProofError as error:
                raise VerificationError(f"entries: entry {seq} is not in the signed log ({error})") from None
            previous, count = seq, count + 1
        if proofs.readline():
            raise VerificationError("inclusion.jsonl: more proofs than entries")
    if count != manifest.number("count"):
        raise VerificationError(f"entries: {count} entries, the signed manifest says {manifest.number('count')}")
    if state is not None:
        _check_state(state, checkpoint, {})
    return Verdict(manifest.origin, 0, count, checkpoint.size, checkpoint.root, selection)


def names_subject(entry: Mapping[str, object], subject: str) -> bool:
    """Whether an entry is about ``subject``: as its own subject, or in one of its ``decisions`` (a partner's
    feed page decides records of many subjects in one entry). Filtered exports select by this rule too."""
    if entry.get("subject") == subject:
        return True
    decisions = entry.get("decisions")
    return isinstance(decisions, list) and any(isinstance(d, dict) and d.get("subject") == subject for d in decisions)


def _matches(entry: dict[str, object], wanted: dict[str, str]) -> bool:
    actor = entry.get("actor")
    time = str(entry.get("time", ""))
    checks: dict[str, Callable[[str], bool]] = {
        "since": lambda v: time >= v,
        "until": lambda v: time < v,
        "agency": lambda v: isinstance(actor, dict) and actor.get("agency") == v,
        "purpose": lambda v: entry.get("purpose") == v,
        "subject": lambda v: names_subject(entry, v),
    }
    return all(name in checks and checks[name](value) for name, value in wanted.items())


def _stream_entries(path: Path, start: int, frontier: Frontier) -> int:
    """Check contiguity and fold every entry's leaf hash into ``frontier``; returns the next sequence number.

    This loop runs once per entry of a bundle of millions, so the frontier's merge and the sequence
    check are inlined here (the same arithmetic as :meth:`Frontier.append`, tested against it).
    """
    sha256 = hashlib.sha256
    sizes, hashes = frontier.sizes, frontier.hashes
    expected = start
    with path.open("rb", buffering=1 << 20) as handle:
        for line in handle:
            if line[-1:] != b"\n":
                raise VerificationError(f"entries: entry {expected} is not newline-terminated")
            body = line[:-1]
            at = body.find(b'"seq":')
            stop = body.find(b",", at)
            if at < 0 or stop < 0 or body[at + 6 : stop] != str(expected).encode():
                raise VerificationError(
                    f"entries: sequence broken at position {expected - start} (expected {expected})"
                )
            node = sha256(b"\x00" + body).digest()
            width = 1
            while sizes and sizes[-1] == width:
                sizes.pop()
                node = sha256(b"\x01" + hashes.pop() + node).digest()
                width <<= 1
            sizes.append(width)
            hashes.append(node)
            expected += 1
    return expected


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
    parser.add_argument("--tsa-cert", type=Path, help="PEM certificate of the time-stamping authority")
    parser.add_argument("--tsa-root", type=Path, help="PEM root certificate(s) the TSA chains to")
    parser.add_argument("--witness", action="append", default=[], help="a witness's key whose cosignature is required")
    args = parser.parse_args(argv)
    try:
        key_text = Path(args.key).read_text(encoding="utf-8") if Path(args.key).is_file() else args.key
        key = VerifierKey.parse(key_text)
        expect = (args.start, args.end) if args.start is not None and args.end is not None else None
        tsa = TrustedTsa(args.tsa_cert, args.tsa_root) if args.tsa_cert and args.tsa_root else None
        witnesses = [VerifierKey.parse(w) for w in args.witness]
        verdict = verify_bundle(args.bundle, key, args.state, expect, tsa, witnesses)
    except (VerificationError, NoteError) as error:
        print(f"INVALID: {error}")
        return 1
    print(verdict.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
