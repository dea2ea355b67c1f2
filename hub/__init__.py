"""The hub service: settings, data catalog, store, API, CLI and the synthetic agency sources.

The other top-level packages own one concern each (``keys``: encryption, ``audit``: the evidence log,
``policies``: decisions, ``connectors``: ingestion); ``hub`` wires them into one service and owns the
data at rest.
"""

__version__ = "0.1.0"
