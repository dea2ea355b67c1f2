"""RFC 9162 Merkle trees: hashes, proofs and their verification, with the standard library only.

The offline verifier imports this module, so it must stay free of anything but ``hashlib``. The
algorithms are the RFC's own (2.1.1 MTH, 2.1.3 PATH and inclusion verification, 2.1.4 SUBPROOF and
consistency verification); :class:`MerkleTree` answers them in O(log n) hashes by keeping every perfect
subtree's hash, and :class:`Frontier` folds a stream of leaves into a root in O(log n) memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof does not verify, or its parameters are impossible."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over a list of leaf hashes, by the RFC's recursive definition (reference implementation)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = _split(len(leaf_hashes))
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


class Frontier:
    """The hashes of the perfect subtrees covering leaves [0, size): a compact range from zero."""

    __slots__ = ("hashes", "sizes")

    def __init__(self, sizes: list[int] | None = None, hashes: list[bytes] | None = None) -> None:
        self.sizes: list[int] = list(sizes or [])
        self.hashes: list[bytes] = list(hashes or [])
        if len(self.sizes) != len(self.hashes) or any(s & (s - 1) for s in self.sizes):
            raise ProofError("frontier: subtree sizes must be powers of two, one per hash")
        if any(a <= b for a, b in zip(self.sizes, self.sizes[1:], strict=False)):
            raise ProofError("frontier: subtree sizes must strictly decrease")

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def append(self, hashed_leaf: bytes) -> None:
        sizes, hashes = self.sizes, self.hashes
        sizes.append(1)
        hashes.append(hashed_leaf)
        while len(sizes) > 1 and sizes[-1] == sizes[-2]:
            right = hashes.pop()
            sizes.pop()
            hashes[-1] = node_hash(hashes[-1], right)
            sizes[-1] *= 2

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root


class MerkleTree:
    """An append-only tree keeping the hash of every perfect subtree (about 2n hashes in memory)."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for hashed in leaf_hashes:
            self.append(hashed)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, hashed_leaf: bytes) -> None:
        self.levels[0].append(hashed_leaf)
        level = 0
        while len(self.levels[level]) % 2 == 0:
            nodes = self.levels[level]
            parent = node_hash(nodes[-2], nodes[-1])
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(parent)
            level += 1

    def _range(self, lo: int, hi: int) -> bytes:
        """MTH of leaves [lo, hi), lo aligned as the RFC's recursion guarantees."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0:
            level = n.bit_length() - 1
            return self.levels[level][lo >> level]
        k = _split(n)
        return node_hash(self._range(lo, lo + k), self._range(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ProofError(f"tree has {self.size} leaves, not {size}")
        return self._range(0, size)

    def frontier(self, size: int) -> Frontier:
        """The compact range [0, size): the starting state for a verifier that streams from ``size``."""
        if not 0 <= size <= self.size:
            raise ProofError(f"tree has {self.size} leaves, not {size}")
        sizes, hashes, lo = [], [], 0
        for bit in reversed(range(size.bit_length())):
            width = 1 << bit
            if size & width:
                sizes.append(width)
                hashes.append(self.levels[bit][lo >> bit])
                lo += width
        return Frontier(sizes, hashes)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        if not 0 <= index < size <= self.size:
            raise ProofError(f"no leaf {index} in a tree of {size} (log has {self.size})")
        proof: list[bytes] = []
        lo, hi, m = 0, size, index
        while hi - lo > 1:
            k = _split(hi - lo)
            if m < k:
                proof.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range(lo, lo + k))
                lo, m = lo + k, m - k
        proof.reverse()
        return proof

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        if not 0 <= size1 <= size2 <= self.size:
            raise ProofError(f"no consistency proof from {size1} to {size2} (log has {self.size})")
        if size1 == 0 or size1 == size2:
            return []
        proof: list[bytes] = []
        lo, hi, m, complete = 0, size2, size1, True
        while True:
            n = hi - lo
            if m == n:
                if not complete:
                    proof.append(self._range(lo, hi))
                break
            k = _split(n)
            if m <= k:
                proof.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        proof.reverse()
        return proof


def _check_hashes(*hashes: bytes) -> None:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise ProofError("hashes must be 32 bytes")


def verify_inclusion(index: int, size: int, hashed_leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 2.1.3.2. Raises ProofError unless ``proof`` places the leaf at ``index`` under ``root``."""
    _check_hashes(hashed_leaf, root, *proof)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size}")
    fn, sn, r = index, size - 1, hashed_leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """RFC 9162 2.1.4.2. Raises ProofError unless the tree of ``size2`` extends the tree of ``size1``."""
    if not 0 < size1 <= size2:
        # Nothing is proved about an empty tree; the upstream probes reject it, so callers special-case 0.
        raise ProofError(f"cannot prove {size1} -> {size2}")
    if size1 == size2:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if root1 != root2:
            raise ProofError("equal sizes with different roots: the log forked")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    _check_hashes(root1, root2, *proof)
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != root1:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != root2:
        raise ProofError("consistency proof does not lead to the new root")
