"""Base error types shared by the hub's packages.

Every error a person may see carries a message that is safe to show: it names settings, datasets,
fields and positions, never the personal data being processed. The CLI prints ``str(error)`` as one
line; the API turns the same errors into RFC 9457 problem documents.
"""


class HubError(Exception):
    """An expected failure with a message fit for an operator (one line, no personal data)."""


class SettingsError(HubError):
    """A setting is missing or has a value the hub cannot use."""


class CatalogError(HubError):
    """A catalog definition is incomplete or inconsistent; nothing from it is loaded."""
