"""Keys: field-level envelope encryption, rotation, crypto-shredding, blind indexes and masks.

This package owns every cryptographic key of the hub and the only code that turns personal values
into ciphertext and back. The store, the bus and the audit log see its output only.
"""
