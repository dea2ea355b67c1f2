"""Paginated JSON APIs: bearer token or signed requests, backoff on 429 and 5xx up to a retry limit,
incremental by watermark.

A source that asks for signed requests gets each one signed with the hub's RFC 9421 profile (Ed25519
over ``@method`` and ``@target-uri``, with ``created``, ``nonce`` and ``keyid``; see hub.httpsig), from the
connector's ``signing_key_file`` and ``signing_key_id``; a bearer token may go with it.

The API is asked for items updated since one second before the checkpoint and returns them in
(watermark, key) order; items at or before the checkpoint's (watermark, key) are skipped here, so items
sharing the checkpoint's timestamp are neither lost nor repeated.

One bad item does not stop the connector: an item that is not an object, or has no usable key or
watermark (an ISO 8601 time), cannot be placed in that order nor checkpointed, so it is handed on as a
rejected row (a dead letter with the reason) and the page's other items go on. A page that is not a JSON
object with an ``items`` list stops the run with SourceUnavailable, and the next run resumes from the
checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors.config import ConnectorConfig, ConnectorConfigError
from connectors.sources.base import Batch, Row
from hub.client import SignedRequests
from hub.errors import HubError

RETRY_STATUSES = {429, 500, 502, 503, 504}


class SourceUnavailable(HubError):
    """The source kept failing after the retries; the run stops and resumes from its checkpoint."""


def _signing_key(config: ConnectorConfig) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(config.require("signing_key_file")).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ConnectorConfigError(f"connector {config.name}: signing_key_file: {type(error).__name__}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConnectorConfigError(f"connector {config.name}: signing_key_file holds no Ed25519 private key")
    return key


class RestSource:
    def __init__(self, config: ConnectorConfig, client: httpx.Client | None = None, backoff: float = 0.2) -> None:
        self.config = config
        self.url = config.require("url")
        self.watermark = config.require("watermark")
        headers = {}
        if config.token_file:
            headers["Authorization"] = f"Bearer {Path(config.token_file).read_text(encoding='utf-8').strip()}"
        self.client = client or httpx.Client(headers=headers, timeout=30)
        if client is not None:
            self.client.headers.update(headers)
        if config.signing_key_file and config.signing_key_id:
            self.client.auth = SignedRequests(config.signing_key_id, _signing_key(config), None)
        self.backoff = backoff

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(self.config.max_retries + 1):
            try:
                response = self.client.get(self.url, params=params)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code not in RETRY_STATUSES:
                if response.status_code != 200:
                    raise SourceUnavailable(f"{self.config.name}: HTTP {response.status_code} from the source")
                try:
                    body = response.json()
                except ValueError:
                    body = None
                if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                    raise SourceUnavailable(
                        f"{self.config.name}: a page from the source is not a JSON object with items"
                    )
                return body
            if attempt < self.config.max_retries:
                retry_after = response.headers.get("Retry-After") if response is not None else None
                time.sleep(float(retry_after) if retry_after and retry_after.isdigit() else self.backoff * 2**attempt)
        raise SourceUnavailable(f"{self.config.name}: the source kept failing after {self.config.max_retries} retries")

    def batches(self, state: dict[str, Any]) -> Iterator[Batch]:
        mark, key = state.get("watermark"), state.get("key")
        params: dict[str, Any] = {"page_size": self.config.page_size}
        if mark is not None:
            params["updated_since"] = (datetime.fromisoformat(mark) - timedelta(seconds=1)).isoformat()
        page, checkpoint = 1, dict(state)
        while True:
            body = self._get({**params, "page": page})
            rows = []
            for index, item in enumerate(body["items"]):
                problem = self._problem(item)
                if problem is not None:
                    rows.append(self._rejected(item, page, index, problem))
                    continue
                if mark is None or (item[self.watermark], item[self.config.key]) > (mark, key):
                    rows.append(
                        Row(f"{self.url}#{self.config.key}={item[self.config.key]}", item, item[self.watermark])
                    )
                    checkpoint = {"watermark": item[self.watermark], "key": item[self.config.key]}
            if rows:
                yield Batch(rows, checkpoint)
            if not body.get("has_more"):
                return
            page += 1

    def _problem(self, item: Any) -> str | None:
        """Why an item cannot be placed in (watermark, key) order, if it cannot; the reason names no value."""
        if not isinstance(item, dict):
            return "the item is not a JSON object"
        if self._key_of(item) is None:
            return f"the item has no usable key ({self.config.key})"
        watermark = item.get(self.watermark)
        try:
            if isinstance(watermark, str):
                datetime.fromisoformat(watermark)  # the next run asks for items updated since it
                return None
        except ValueError:
            pass
        return f"the item's watermark ({self.watermark}) is missing or not an ISO 8601 time"

    def _key_of(self, item: dict[str, Any]) -> str | int | None:
        value = item.get(self.config.key)
        return value if value.__class__ in (str, int) and value != "" else None

    def _rejected(self, item: Any, page: int, index: int, problem: str) -> Row:
        """A rejected item's row, named by its key, or by its place in the page when it has none."""
        place = f"{self.url}#page={page}&item={index}"
        if not isinstance(item, dict):
            return Row(place, {"__malformed__": json.dumps(item)}, None, problem)
        record_key = self._key_of(item)
        return Row(place if record_key is None else f"{self.url}#{self.config.key}={record_key}", item, None, problem)
