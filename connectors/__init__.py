"""Connectors: pull each agency's systems (SQL, REST, file drops) onto the bus, protected.

This package owns ingestion: mapping source fields onto catalog fields (and dropping the rest),
validation with dead letters, encryption before publish through ``keys``, source checkpoints, the
bus implementations and the materialiser that writes into the hub's store. The synthetic source
systems it reads in the demo live in ``hub.synthetic``.
"""
