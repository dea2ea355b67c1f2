"""The hub's HTTP API (FastAPI): health now; partner, officer, auditor and resident endpoints later.

Every error leaves as an RFC 9457 ``application/problem+json`` document carrying the request id, so
a partner can quote it to an operator without either side handling personal data.
"""

from hub.api.app import create_app

__all__ = ["create_app"]
