"""Export bundles and the offline verifier: the untouched bundle passes, over 1,000 tampered ones fail."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.entries import Actor, EntryDraft
from audit.export import export_bundle
from audit.log import AuditLog
from audit.note import NoteSigner
from audit.verify import VerificationError, verify_bundle
from keys.sql import create_sql_engine

ORIGIN = "hub.test/audit"


def draft(n: int) -> EntryDraft:
    return EntryDraft(
        type="data.release",
        actor=Actor(agency="police", principal=f"P-{n % 7:04d}", role="investigator"),
        purpose="missing_person",
        dataset="health.visit",
        subject=f"{n:064x}",
        fields_released=("hospital", "visit_time"),
        detail={"n": n},
    )


def make_log(path: Path, signer: NoteSigner, count: int, change: int | None = None) -> AuditLog:
    log = AuditLog(create_sql_engine(f"sqlite:///{path}"), signer, signer.name)
    for n in range(count):
        log.append(draft(n if n != change else n + 1_000_000))
    return log


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, NoteSigner, AuditLog]:
    root = tmp_path_factory.mktemp("audit")
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    log = make_log(root / "audit.db", signer, 120)
    log.checkpoint()  # an earlier checkpoint at 120, as an auditor may hold
    for n in range(120, 200):
        log.append(draft(n))
    full = export_bundle(log, root / "full")
    part = export_bundle(log, root / "part", start=37, end=150)
    state = root / "state-120.json"
    import base64

    state.write_text(json.dumps({"origin": ORIGIN, "size": 120, "root": base64.b64encode(log.root(120)).decode()}))
    return full, part, state, signer, log


def test_untouched_bundles_verify(setup: tuple[Path, Path, Path, NoteSigner, AuditLog], tmp_path: Path) -> None:
    full, part, state, signer, _ = setup
    assert verify_bundle(full, signer.verifier).end == 200
    verdict = verify_bundle(part, signer.verifier, expect=(37, 150))
    assert (verdict.start, verdict.end, verdict.checkpoint_size) == (37, 150, 200)
    held = tmp_path / "state.json"
    shutil.copy(state, held)
    verify_bundle(full, signer.verifier, held)
    assert json.loads(held.read_text())["size"] == 200  # the state moved forward


def test_cli_exit_codes(setup: tuple[Path, Path, Path, NoteSigner, AuditLog], tmp_path: Path) -> None:
    full, _, _, signer, _ = setup
    ok = subprocess.run(
        [sys.executable, "-m", "audit.verify", str(full), "--key", signer.verifier.encode()],
        capture_output=True,
        text=True,
    )
    assert (
        ok.returncode == 0
        and ok.stdout.startswith("OK hub.test/audit: entries [0, 200)")
        and ok.stdout.count("\n") == 1
    )
    broken = tmp_path / "broken"
    shutil.copytree(full, broken)
    (broken / "entries.jsonl").write_bytes((broken / "entries.jsonl").read_bytes()[:-50])
    bad = subprocess.run(
        [sys.executable, "-m", "audit.verify", str(broken), "--key", signer.verifier.encode()],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and bad.stdout.startswith("INVALID: entries.jsonl: digest")


def test_the_verifier_imports_nothing_from_the_hub() -> None:
    forbidden = "('hub', 'keys', 'policies', 'connectors', 'sqlalchemy', 'pydantic')"
    code = (
        "import sys, audit.verify; "
        f"bad = [m for m in sys.modules if m.split('.')[0] in {forbidden}]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


Mutation = Callable[[Path], None]


def _copier(source: Path) -> Mutation:
    def run(bundle: Path) -> None:
        shutil.copy(source, bundle / source.name)

    return run


def _lines(bundle: Path) -> list[bytes]:
    return (bundle / "entries.jsonl").read_bytes().splitlines(keepends=True)


def _write(bundle: Path, lines: list[bytes]) -> None:
    (bundle / "entries.jsonl").write_bytes(b"".join(lines))


def _resign_manifest(bundle: Path, signer: NoteSigner) -> None:
    """What an attacker holding the log key could do: make digests match again. Used for deeper checks."""
    import hashlib

    text = (bundle / "manifest.note").read_text()
    body = text.split("\n\n")[0] + "\n"
    lines = body.splitlines()
    for i, line in enumerate(lines):
        name = line.split(" ")[0]
        if (bundle / name).is_file() and line.startswith(name + " sha256:"):
            lines[i] = f"{name} sha256:{hashlib.sha256((bundle / name).read_bytes()).hexdigest()}"
    body = "".join(x + "\n" for x in lines)
    (bundle / "manifest.note").write_text(body + "\n" + signer.signature_line(body))


def mutations(signer: NoteSigner, other_log: Path, rng: random.Random) -> list[tuple[str, Mutation, bool]]:
    """(name, mutation, re-sign manifest with the log's own key) — re-signing exercises the inner checks."""
    out: list[tuple[str, Mutation, bool]] = []

    def modify(index: int, position: int) -> Mutation:
        def run(b: Path) -> None:
            lines = _lines(b)
            line = bytearray(lines[index % len(lines)])
            at = position % (len(line) - 1)
            line[at] = (line[at] + 1 + rng.randrange(254)) % 256
            lines[index % len(lines)] = bytes(line)
            _write(b, lines)

        return run

    def drop(index: int) -> Mutation:
        return lambda b: _write(b, [x for i, x in enumerate(_lines(b)) if i != index % len(_lines(b))])

    def insert(index: int) -> Mutation:
        def run(b: Path) -> None:
            lines = _lines(b)
            lines.insert(index % len(lines), lines[(index * 7) % len(lines)])
            _write(b, lines)

        return run

    def swap(index: int) -> Mutation:
        def run(b: Path) -> None:
            lines = _lines(b)
            i = index % (len(lines) - 1)
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
            _write(b, lines)

        return run

    def truncate(count: int) -> Mutation:
        return lambda b: _write(b, _lines(b)[: -(count % 40 + 1)])

    for n in range(300):
        out.append((f"modify-{n}", modify(rng.randrange(10_000), rng.randrange(10_000)), n % 2 == 0))
    for n in range(150):
        out.append((f"drop-{n}", drop(n), n % 2 == 0))
    for n in range(120):
        out.append((f"insert-{n}", insert(n), n % 2 == 0))
    for n in range(120):
        out.append((f"reorder-{n}", swap(n), n % 2 == 0))
    for n in range(80):
        out.append((f"truncate-{n}", truncate(n), n % 2 == 0))
    for n in range(60):
        out.append(
            (
                f"other-log-checkpoint-{n}",
                _copier(other_log / "checkpoint.note"),
                n % 2 == 0,
            )
        )
    for n in range(40):
        out.append(
            (
                f"other-log-entries-{n}",
                _copier(other_log / "entries.jsonl"),
                n % 2 == 0,
            )
        )
    for n in range(40):

        def frontier(b: Path, n: int = n) -> None:
            raw = json.loads((b / "frontier.json").read_text())
            raw["sizes"] = [*raw["sizes"][:-1], raw["sizes"][-1] // 2] if raw["sizes"] and n % 2 else [64, 32]
            (b / "frontier.json").write_text(json.dumps(raw))

        out.append((f"frontier-{n}", frontier, True))
    for n in range(40):

        def proof(b: Path, n: int = n) -> None:
            raw = json.loads((b / "consistency.json").read_text())
            if raw["end"]:
                raw["end"][n % len(raw["end"])] = raw["end"][(n + 1) % len(raw["end"])][::-1]
            else:
                raw["end"] = ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
            (b / "consistency.json").write_text(json.dumps(raw))

        out.append((f"proof-{n}", proof, True))
    for n in range(30):

        def manifest_range(b: Path, n: int = n) -> None:
            text = (b / "manifest.note").read_text()
            (b / "manifest.note").write_text(text.replace("\nend ", f"\nend {n % 9 + 1}", 1))

        out.append((f"manifest-range-{n}", manifest_range, False))
    return out


def test_every_tampered_bundle_is_rejected(
    setup: tuple[Path, Path, Path, NoteSigner, AuditLog], tmp_path: Path
) -> None:
    full, part, _state, signer, _ = setup
    other_signer = NoteSigner("hub.other/audit", Ed25519PrivateKey.generate())
    other = export_bundle(make_log(tmp_path / "other.db", other_signer, 200), tmp_path / "other")
    rng = random.Random(7)
    rejected = 0
    cases = mutations(signer, other, rng)
    for index, (name, mutate, resign) in enumerate(cases):
        source = full if index % 2 == 0 else part
        bundle = tmp_path / f"t{index}"
        shutil.copytree(source, bundle)
        mutate(bundle)
        if resign:
            _resign_manifest(bundle, signer)
        with pytest.raises(VerificationError):
            verify_bundle(bundle, signer.verifier)
            pytest.fail(f"{name} (re-signed: {resign}) was accepted")
        rejected += 1
        shutil.rmtree(bundle)
    # Wrong key, a key of another log, and stale or forked auditor state.
    wrong_keys = [NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).verifier for _ in range(40)] + [
        other_signer.verifier
    ] * 10
    for key in wrong_keys:
        with pytest.raises(VerificationError):
            verify_bundle(full, key)
        rejected += 1
    import base64

    for n in range(40):
        held = tmp_path / f"state{n}.json"
        if n % 2:
            held.write_text(
                json.dumps({"origin": ORIGIN, "size": 200 + n, "root": base64.b64encode(b"\1" * 32).decode()})
            )
        else:
            held.write_text(
                json.dumps({"origin": ORIGIN, "size": 200, "root": base64.b64encode(bytes([n]) * 32).decode()})
            )
        with pytest.raises(VerificationError, match=r"stale|forked"):
            verify_bundle(full, signer.verifier, held)
        rejected += 1
    assert rejected >= 1000, rejected
    assert verify_bundle(full, signer.verifier).end == 200  # the untouched bundle still passes


def test_a_rewritten_log_is_refused_by_an_auditor_holding_its_history(
    setup: tuple[Path, Path, Path, NoteSigner, AuditLog], tmp_path: Path
) -> None:
    _, _, state, signer, _ = setup
    held = tmp_path / "held.json"
    shutil.copy(state, held)  # the auditor accepted the checkpoint at size 120
    rewritten = make_log(tmp_path / "rewritten.db", signer, 120, change=57)  # same key, one entry changed
    rewritten.checkpoint()
    for n in range(120, 200):
        rewritten.append(draft(n))
    bundle = export_bundle(rewritten, tmp_path / "rewritten")
    assert verify_bundle(bundle, signer.verifier).end == 200  # on its own it looks fine
    with pytest.raises(VerificationError, match="log rewritten since the accepted checkpoint"):
        verify_bundle(bundle, signer.verifier, held)


def test_filtered_export_proves_each_entry(
    setup: tuple[Path, Path, Path, NoteSigner, AuditLog], tmp_path: Path
) -> None:
    from audit.export import EntryFilter, export_filtered

    _, _, _, signer, log = setup
    subject = f"{42:064x}"
    bundle = export_filtered(log, tmp_path / "subject", EntryFilter(subject=subject, purpose="missing_person"))
    verdict = verify_bundle(bundle, signer.verifier)
    assert verdict.end == 1 and verdict.selection == f"purpose=missing_person subject={subject}"
    officer = export_filtered(log, tmp_path / "agency", EntryFilter(agency="police"))
    assert verify_bundle(officer, signer.verifier).end == 200
    # An entry of another subject smuggled in (with its genuine proof) does not match the signed filter.
    smuggled = tmp_path / "smuggled"
    shutil.copytree(bundle, smuggled)
    other_line = _lines(officer)[7]
    other_proof = (officer / "inclusion.jsonl").read_text().splitlines()[7] + "\n"
    _write(smuggled, [*_lines(smuggled), other_line])
    with (smuggled / "inclusion.jsonl").open("a") as handle:
        handle.write(other_proof)
    _resign_manifest(smuggled, signer)
    with pytest.raises(VerificationError, match=r"does not match the signed filter|out of order"):
        verify_bundle(smuggled, signer.verifier)
    # A forged entry with a made-up proof is not in the log.
    forged = tmp_path / "forged"
    shutil.copytree(bundle, forged)
    _write(forged, [_lines(forged)[0].replace(b'"hospital"', b'"diagnosis"')])
    _resign_manifest(forged, signer)
    with pytest.raises(VerificationError, match="not in the signed log"):
        verify_bundle(forged, signer.verifier)
    # Dropping the only entry contradicts the signed count.
    empty = tmp_path / "empty"
    shutil.copytree(bundle, empty)
    _write(empty, [])
    (empty / "inclusion.jsonl").write_text("")
    _resign_manifest(empty, signer)
    with pytest.raises(VerificationError, match="the signed manifest says 1"):
        verify_bundle(empty, signer.verifier)


def test_a_subject_named_only_in_a_querys_decisions_is_selected_and_verified(tmp_path: Path) -> None:
    """A feed page's entry decides about several subjects without naming one at its top level: a filtered
    export for one of them selects it, and the offline verifier accepts it under that filter."""
    from audit.entries import QueryDecision
    from audit.export import EntryFilter, export_filtered

    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    log = make_log(tmp_path / "audit.db", signer, 3)
    subject, other = "ab" * 32, "cd" * 32
    page = EntryDraft(
        type="data.release",
        actor=Actor(agency="health", principal="svc-feed", role="partner"),
        purpose="missing_person",
        decisions=tuple(
            QueryDecision(dataset="civil_affairs.vulnerable_person", policy="p", result="permit", records=1, subject=s)
            for s in (other, subject)
        ),
    )
    log.append(page)
    bundle = export_filtered(log, tmp_path / "mine", EntryFilter(subject=subject))
    assert [json.loads(line)["seq"] for line in _lines(bundle)] == [3]
    assert verify_bundle(bundle, signer.verifier).end == 1
    assert not EntryFilter(subject="ef" * 32).matches(json.loads(page.model_dump_json()))
    log.close()
