"""Policies: who may see which field of which record, for which purpose, under which basis.

This package owns decisions: Casbin roles per agency, the Rego need-to-know rules and their tests,
sharing agreements, the consent ledger and lawful bases. It decides; it never fetches or releases data.
"""
