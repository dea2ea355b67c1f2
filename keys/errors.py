"""Typed failures of the keys package, safe to show: no key material, no plaintext, no subject.

Modelled on pyca/cryptography and sigstore-python: callers branch on the type, operators read the
message. Every failure to decrypt is a :class:`DecryptionError` (or :class:`KeyShredded`), never
garbage bytes.
"""


class KeysError(Exception):
    """Base of every expected failure in the keys package."""


class KeystoreUnavailable(KeysError):
    """The keystore is missing, corrupt or locked; nothing can be encrypted or decrypted."""


class KeystoreLocked(KeystoreUnavailable):
    """No passphrase or master key was given to unlock the keystore."""


class WrongPassphrase(KeystoreUnavailable):
    """The passphrase or master key does not open this keystore."""


class DecryptionError(KeysError):
    """A ciphertext is malformed, was altered, or was moved to another record or field."""


class KeyShredded(DecryptionError):
    """The subject's data key was destroyed on purpose (crypto-shredding); the data is gone for good."""


class UnknownKey(KeysError):
    """A key id or version the keystore does not hold."""


class KeyInUse(KeysError):
    """A KEK version cannot be retired while data keys are still wrapped under it."""
