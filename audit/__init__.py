"""Audit: the append-only, verifiable (RFC 9162 Merkle tree) log of every decision and release.

This package owns the evidence: entries, the Merkle tree and its proofs, signed checkpoints,
witnessing, the auditor export and the offline verifier (which depends on nothing in ``hub``).
"""
