"""RFC 9162 Merkle tree against the public vectors in ../shared/testdata, plus properties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    MerkleTree,
    ProofError,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

VECTORS_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "rfc9162-merkle-vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
LEAVES = [bytes.fromhex(h) for h in VECTORS["leaf_inputs_hex"]]
TREE = MerkleTree(leaf_hash(x) for x in LEAVES)
h = bytes.fromhex


def test_hasher_known_answers() -> None:
    for kat in VECTORS["hasher_kats"]:
        if kat["op"] == "empty_root":
            got = EMPTY_ROOT
        elif kat["op"] == "leaf":
            got = leaf_hash(h(kat["input_hex"]))
        else:
            got = node_hash(h(kat["left_hex"]), h(kat["right_hex"]))
        assert got.hex() == kat["want"], kat


@pytest.mark.parametrize("size", range(9))
def test_roots_by_size(size: int) -> None:
    want = VECTORS["roots_by_size"][str(size)]
    assert TREE.root(size).hex() == want
    assert root_of([leaf_hash(x) for x in LEAVES[:size]]).hex() == want
    frontier = Frontier()
    for leaf in LEAVES[:size]:
        frontier.append(leaf_hash(leaf))
    assert frontier.root().hex() == want


def test_node_hashes_by_level() -> None:
    for level, hashes in VECTORS["node_hashes_by_level"].items():
        assert [x.hex() for x in TREE.levels[int(level)][: len(hashes)]] == hashes


@pytest.mark.parametrize("case", VECTORS["inclusion_proofs"], ids=lambda c: f"{c['leaf_index']}of{c['tree_size']}")
def test_inclusion_proof_vectors(case: dict[str, Any]) -> None:
    index, size = case["leaf_index"], case["tree_size"]
    proof = TREE.inclusion_proof(index, size)
    assert [p.hex() for p in proof] == case["proof"]
    verify_inclusion(index, size, leaf_hash(LEAVES[index]), proof, TREE.root(size))


@pytest.mark.parametrize("case", VECTORS["consistency_proofs"], ids=lambda c: f"{c['size1']}to{c['size2']}")
def test_consistency_proof_vectors(case: dict[str, Any]) -> None:
    size1, size2 = case["size1"], case["size2"]
    proof = TREE.consistency_proof(size1, size2)
    assert [p.hex() for p in proof] == case["proof"]
    verify_consistency(size1, size2, proof, TREE.root(size1), TREE.root(size2))


def test_real_certificate_transparency_log_inclusion() -> None:
    case = VECTORS["real_ct_log_inclusion"]
    verify_inclusion(
        case["leaf_index"], case["tree_size"], h(case["leaf_hash"]), [h(p) for p in case["proof"]], h(case["root"])
    )


@pytest.mark.parametrize("probe", VECTORS["probes"]["inclusion"], ids=lambda p: p["file"])
def test_upstream_inclusion_probes(probe: dict[str, Any]) -> None:
    def run() -> None:
        verify_inclusion(
            probe["leaf_index"],
            probe["tree_size"],
            h(probe["leaf_hash"]),
            [h(p) for p in probe["proof"]],
            h(probe["root"]),
        )

    if probe["want_err"]:
        with pytest.raises(ProofError):
            run()
    else:
        run()


@pytest.mark.parametrize("probe", VECTORS["probes"]["consistency"], ids=lambda p: p["file"])
def test_upstream_consistency_probes(probe: dict[str, Any]) -> None:
    def run() -> None:
        verify_consistency(
            probe["size1"], probe["size2"], [h(p) for p in probe["proof"]], h(probe["root1"]), h(probe["root2"])
        )

    if probe["want_err"]:
        with pytest.raises(ProofError):
            run()
    else:
        run()


def test_c2sp_signed_note_example_verifies() -> None:
    from audit.note import NoteError, VerifierKey, verify_note

    example = VECTORS["signed_note_example"]
    key = VerifierKey.parse(example["vkey"])
    assert key.id.hex() == "530d903a"
    assert verify_note(example["note"], key) == "This is an example message.\n"
    with pytest.raises(NoteError):
        verify_note(example["note"].replace("example message", "altered message"), key)
    other = VerifierKey("example.com/foo", 1, bytes(32))
    with pytest.raises(NoteError):
        verify_note(example["note"], other)


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70), st.data())
def test_every_proof_verifies_and_frontiers_agree(leaves: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree(leaf_hash(x) for x in leaves)
    size2 = data.draw(st.integers(1, len(leaves)))
    size1 = data.draw(st.integers(0, size2))
    index = data.draw(st.integers(0, size2 - 1))
    assert tree.root(size2) == root_of([leaf_hash(x) for x in leaves[:size2]])
    verify_inclusion(index, size2, leaf_hash(leaves[index]), tree.inclusion_proof(index, size2), tree.root(size2))
    if size1 > 0:
        verify_consistency(size1, size2, tree.consistency_proof(size1, size2), tree.root(size1), tree.root(size2))
    frontier = tree.frontier(size1)
    for leaf in leaves[size1:size2]:
        frontier.append(leaf_hash(leaf))
    assert frontier.root() == tree.root(size2)
    if size1 > 0 and size1 < size2:
        with pytest.raises(ProofError):
            verify_consistency(
                size1, size2, tree.consistency_proof(size1, size2), node_hash(b"x" * 32, b"y" * 32), tree.root(size2)
            )
