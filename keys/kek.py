"""The key-encryption-key boundary: what an external KMS or HSM must provide to take the KEK role.

The embedded :class:`~keys.keystore.Keystore` implements it with KEKs sealed in a local file; a KMS
implementation would keep KEKs inside the KMS and perform ``wrap``/``unwrap`` remotely. Nothing else
in the hub touches KEK material.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class KekVersion:
    version: int
    created_at: datetime
    retired_at: datetime | None
    current: bool


class KekProvider(Protocol):
    @property
    def kek_id(self) -> str: ...

    @property
    def current_kek_version(self) -> int: ...

    def wrap(self, dek: bytes, associated_data: bytes) -> tuple[int, bytes]:
        """Wrap under the current version; returns (version, wrapped blob)."""
        ...

    def unwrap(self, version: int, wrapped: bytes, associated_data: bytes) -> bytes: ...

    def add_kek_version(self) -> int: ...

    def retire_kek_version(self, version: int) -> None: ...

    def kek_versions(self) -> list[KekVersion]: ...
