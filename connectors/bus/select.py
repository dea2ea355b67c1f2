"""The bus the settings name: the embedded log under ``var/bus`` (default) or Kafka."""

from __future__ import annotations

from connectors.bus.base import Bus
from hub.settings import Settings


def open_bus(settings: Settings) -> Bus:
    if settings.bus == "kafka":
        from connectors.bus.kafka import KafkaBus

        return KafkaBus(settings.kafka_bootstrap_servers, namespace=settings.kafka_namespace)
    from connectors.bus.local import LocalBus

    return LocalBus(settings.var_dir / "bus")
