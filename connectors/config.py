"""Connector configuration: one TOML file per source system in ``connectors/agencies/``.

Adding an agency is a new TOML file: where the source is (SQL URL and table, REST URL and token, or a
drop folder and file pattern), its key and watermark, and for each catalog field the source column it
comes from, with an optional value map or list separator. Types, normalisation and validation follow
the catalog. ``{sources}`` and ``{education_api}`` in strings are filled in by the runner.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hub.catalog import Catalog
from hub.errors import HubError


class ConnectorConfigError(HubError):
    """A connector file is incomplete or names fields the catalog does not have."""


class FieldMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(alias="from")
    map: dict[str, str] | None = None
    split: str | None = None


class ConnectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    agency: str
    system: str
    dataset: str
    kind: Literal["sql", "rest", "file", "push"]
    key: str
    timezone: str = "+08:00"
    fields: dict[str, FieldMapping]
    # sql
    url: str | None = None
    table: str | None = None
    watermark: str | None = None
    deleted: str | None = None
    # rest
    token_file: str | None = None
    signing_key_file: str | None = None  # an Ed25519 private key (PEM): requests are signed (RFC 9421)
    signing_key_id: str | None = None  # the keyid the source knows that key by
    page_size: int = 200
    max_retries: int = 5
    # file
    directory: str | None = None
    pattern: str | None = None
    format: Literal["csv", "jsonl"] | None = None
    encoding: str = "utf-8"  # of a dropped file: utf-8 (a byte-order mark is dropped), gb18030, gbk ...
    version_from: str | None = None
    batch_size: int = 2000

    @model_validator(mode="after")
    def _complete(self) -> Self:
        needed = {
            "sql": ("url", "table", "watermark"),
            "rest": ("url", "watermark"),
            "file": ("directory", "pattern", "format"),
            "push": (),
        }
        missing = [name for name in needed[self.kind] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} connector needs {', '.join(missing)}")
        if (self.signing_key_file is None) != (self.signing_key_id is None):
            raise ValueError("signing_key_file and signing_key_id go together")
        try:
            ascii_compatible = "\n,{}a".encode(self.encoding) == b"\n,{}a"
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r}") from None
        if not ascii_compatible:  # files are split into lines, and lines parsed, as bytes
            raise ValueError(f"encoding {self.encoding!r} is not ASCII-compatible (UTF-16 and UTF-32 are not read)")
        return self

    def require(self, name: str) -> str:
        """A location setting this kind of connector needs (validated on load, so present)."""
        value = getattr(self, name)
        if not isinstance(value, str) or not value:
            raise ConnectorConfigError(f"connector {self.name}: no {name}")
        return value

    def resolve(self, **places: str) -> ConnectorConfig:
        """Fill ``{sources}``-style placeholders in location strings."""
        updates = {}
        for name in ("url", "token_file", "signing_key_file", "directory"):
            value = getattr(self, name)
            if value is not None:
                updates[name] = value.format(**places)
        return self.model_copy(update=updates)


def default_directory() -> Path:
    return Path(str(resources.files("connectors") / "agencies"))


def load_connectors(catalog: Catalog, directory: Path | None = None) -> dict[str, ConnectorConfig]:
    configs: dict[str, ConnectorConfig] = {}
    for path in sorted((directory or default_directory()).glob("*.toml")):
        try:
            config = ConnectorConfig.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, ValidationError) as error:
            raise ConnectorConfigError(f"{path.name}: {str(error).splitlines()[0]}") from None
        dataset = catalog.dataset(config.dataset)
        unknown = set(config.fields) - {f.name for f in dataset.fields}
        if unknown:
            raise ConnectorConfigError(
                f"{path.name}: fields not in the catalog of {dataset.id}: {', '.join(sorted(unknown))}"
            )
        if dataset.owner != config.agency:
            raise ConnectorConfigError(f"{path.name}: {dataset.id} belongs to {dataset.owner}, not {config.agency}")
        configs[config.name] = config
    return configs
