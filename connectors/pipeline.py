"""Running connectors and the materialiser with the hub's settings: the ``hub connectors`` and demo path.

``{sources}`` in connector files is the synthetic sources folder (``var/sources``); ``{education_api}``
is the synthetic education API, which this module serves on 127.0.0.1 while the connectors run. A real
deployment writes real locations into its connector files instead.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from connectors.bus.base import Bus, records_topic
from connectors.bus.select import open_bus
from connectors.config import ConnectorConfig, load_connectors
from connectors.materialiser import materialise
from connectors.runner import ConnectorRunner, RunReport
from connectors.workers import Workers, default_workers
from hub import heap
from hub.catalog import Catalog, load_catalog
from hub.errors import HubError
from hub.protection import RecordProtector, open_key_service
from hub.settings import Settings
from hub.store import RecordStore, create_store_engine, init_schema
from hub.synthetic import education
from hub.synthetic.serve import serve_in_thread


@contextlib.contextmanager
def places(settings: Settings, configs: Sequence[ConnectorConfig]) -> Iterator[dict[str, str]]:
    sources = settings.var_dir / "sources"
    found = {"sources": str(sources)}
    if any("{education_api}" in (c.url or "") for c in configs):
        with serve_in_thread(education.create_app(Path(sources) / "education")) as url:
            yield {**found, "education_api": url}
    else:
        yield found


@dataclass
class Pipeline:
    catalog: Catalog
    protector: RecordProtector
    bus: Bus
    store: RecordStore
    configs: dict[str, ConnectorConfig]

    @classmethod
    def open(
        cls,
        settings: Settings,
        catalog: Catalog,
        protector: RecordProtector,
        engine: Engine,
        connectors_dir: Path | None = None,
    ) -> Pipeline:
        configs = load_connectors(catalog, connectors_dir)
        return cls(catalog, protector, open_bus(settings), RecordStore(engine, catalog), configs)

    @classmethod
    def from_settings(cls, settings: Settings, connectors_dir: Path | None = None) -> Pipeline:
        """Everything from the settings: catalog, store (schema and catalog synced), keys, bus, connector files."""
        catalog = load_catalog()
        engine = create_store_engine(settings.effective_database_url)
        init_schema(engine)
        RecordStore(engine, catalog).sync_catalog()
        protector = RecordProtector(open_key_service(settings, create=True), catalog)
        return cls.open(settings, catalog, protector, engine, connectors_dir)

    def select(self, names: Sequence[str] = ()) -> list[ConnectorConfig]:
        if not names:
            return list(self.configs.values())
        chosen = [c for c in self.configs.values() if c.name in names or c.agency in names]
        if not chosen:
            raise HubError(f"no connector named {', '.join(names)}; known: {', '.join(self.configs)}")
        return chosen

    def run(
        self, settings: Settings, names: Sequence[str] = (), progress: Callable[[RunReport], None] | None = None
    ) -> list[RunReport]:
        chosen = self.select(names)
        heap.settle()  # also before the workers fork: they share the settled heap copy-on-write
        heap.keep_freed_memory()  # inherited by the workers: each batch reuses what the last one freed
        workers = settings.connector_workers if settings.connector_workers >= 0 else default_workers()
        with places(settings, chosen) as where, Workers(workers, lambda: open_bus(settings)) as pool:
            runners = [
                ConnectorRunner(config.resolve(**where), self.catalog, self.protector, self.bus, self.store.engine)
                for config in chosen
            ]
            if workers <= 0 or len(runners) == 1:
                return [runner.run(progress, workers=pool) for runner in runners]
            return self._run_together(runners, pool, progress)

    @staticmethod
    def _run_together(
        runners: list[ConnectorRunner], pool: Workers, progress: Callable[[RunReport], None] | None
    ) -> list[RunReport]:
        """Every connector at once, each in a thread of this process, all feeding the one worker pool.

        One after another, the workers idled at every connector's start and end (its first read, its last
        batch) and through each small source's single batch: the three small sources (3,040 of the
        benchmark's 50,842 rows) took 0.4 s of its 2.9-3.1 s. Together, the connectors of that run took
        2.2-2.6 s (connectors alone, no materialiser running). Each connector still reads, delivers and
        checkpoints in its own source order, as alone. One connector's failure does not stop the others;
        the first failure, in the connectors' order, is raised once all have ended. An interrupt stops
        them all after their current batch.
        """
        pool.start(runners[0])
        stop = threading.Event()
        with ThreadPoolExecutor(len(runners), thread_name_prefix="connector") as threads:
            runs = [threads.submit(runner.run, progress, pool, stop) for runner in runners]
            try:
                wait(runs)
            except BaseException:
                stop.set()
                raise
        return [run.result() for run in runs]

    def materialise(
        self, progress: Callable[[int], None] | None = None, idle_seconds: float = 1.0, batch: int = 2000
    ) -> int:
        topics = sorted({records_topic(c.dataset) for c in self.configs.values()})
        heap.settle()
        heap.keep_freed_memory()
        return materialise(self.bus, self.store, topics, progress=progress, idle_seconds=idle_seconds, batch=batch)
