"""Paginated JSON APIs: bearer token, backoff on 429 and 5xx up to a retry limit, incremental by watermark.

The API is asked for items updated since one second before the checkpoint and returns them in
(watermark, key) order; items at or before the checkpoint's (watermark, key) are skipped here, so items
sharing the checkpoint's timestamp are neither lost nor repeated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from connectors.config import ConnectorConfig
from connectors.sources.base import Batch, Row
from hub.errors import HubError

RETRY_STATUSES = {429, 500, 502, 503, 504}


class SourceUnavailable(HubError):
    """The source kept failing after the retries; the run stops and resumes from its checkpoint."""


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
                body: dict[str, Any] = response.json()
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
        page = 1
        while True:
            body = self._get({**params, "page": page})
            items = [i for i in body["items"] if mark is None or (i[self.watermark], i[self.config.key]) > (mark, key)]
            if items:
                last = items[-1]
                yield Batch(
                    [Row(f"{self.url}#{self.config.key}={i[self.config.key]}", i, i[self.watermark]) for i in items],
                    {"watermark": last[self.watermark], "key": last[self.config.key]},
                )
            if not body.get("has_more"):
                return
            page += 1
