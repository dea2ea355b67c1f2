"""Records a partner agency pushes to the hub (the alternative to a pull), through the connectors' own path.

A push connector is the dataset's identity mapping (catalog field names in, catalog fields out) with
``_updated_at`` as the version time and ``_deleted`` as the tombstone flag; validation, protection,
publication and dead letters are :meth:`ConnectorRunner.intake`'s, exactly as for a pull.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from connectors.bus.base import Bus
from connectors.config import ConnectorConfig, FieldMapping
from connectors.runner import ConnectorRunner, RunReport
from connectors.sources.base import Row
from hub.catalog import Catalog
from hub.protection import RecordProtector

VERSION_FIELD = "_updated_at"
DELETED_FIELD = "_deleted"


def push_config(catalog: Catalog, dataset_id: str, system: str) -> ConnectorConfig:
    dataset = catalog.dataset(dataset_id)
    return ConnectorConfig(
        name=f"push:{dataset_id}",
        agency=dataset.owner,
        system=system,
        dataset=dataset_id,
        kind="push",
        key=dataset.record_key_field,
        deleted=DELETED_FIELD,
        fields={f.name: FieldMapping(source=f.name) for f in dataset.fields},
    )


def push_records(
    catalog: Catalog,
    protector: RecordProtector,
    bus: Bus,
    store: Engine,
    dataset_id: str,
    system: str,
    batch_id: str,
    records: list[dict[str, Any]],
) -> tuple[RunReport, list[dict[str, Any]]]:
    """Take pushed records in; returns the run's counts and its dead letters (position and reason)."""
    runner = ConnectorRunner(push_config(catalog, dataset_id, system), catalog, protector, bus, store)
    rows = [
        Row(position=f"{batch_id}:{index}", values=dict(values), version_source=values.get(VERSION_FIELD))
        for index, values in enumerate(records)
    ]
    report = RunReport(runner.config.name)
    letters = runner.intake(rows, report)
    return report, [{"position": str(x["position"]), "reason": str(x["reason"])} for x in letters]
