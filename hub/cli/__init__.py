"""The ``hub`` command line: demo, serve, catalog, and (in later issues) keys, audit, connectors."""
