"""Benchmarks: each prints its figures and, on its last line, one JSON object."""
