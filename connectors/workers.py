"""Preparing connectors' batches in worker processes, delivered in source order.

Mapping, validation, encryption, encoding and publishing are most of a connector's CPU; checkpointing
needs source order. So forked workers prepare and publish the next batches while the connector's own
process reads the source and, taking the workers' answers in source order, advances the checkpoint past a
batch only once the bus acknowledged it: the at-least-once and resume guarantees are those of a single
process. (A record's versions in two batches prepared at once may reach the bus out of order; the
materialiser's upsert by version already makes that harmless, as it does for redelivery.)

Workers are forked, not spawned: they inherit the unlocked keystore and the catalog (no secret crosses a
pipe and nothing is imported again), and drop the inherited database connections, which belong to the
parent. One pool serves a whole run of several connectors, which run at once (each in a thread of the
connector's process, see connectors.pipeline), so the subjects' keys a worker loaded for one dataset are
still cached for the next. The pool is forked before those threads start (:meth:`Workers.start`). A
worker whose parent died (a SIGKILL mid-run) exits by itself.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any

from connectors.sources.base import Row, Unread

if TYPE_CHECKING:
    from connectors.bus.base import Bus
    from connectors.config import ConnectorConfig
    from connectors.runner import ConnectorRunner, Prepared
    from connectors.sources.base import Batch

_template: ConnectorRunner | None = None  # inherited at fork: its catalog, protector, bus and store
_runners: dict[str, ConnectorRunner] = {}


def default_workers() -> int:
    """One per CPU (at most 8): the connector's own process only reads the source and keeps the checkpoint.

    Measured with bench/ingest.py's embedded path on a 2-core machine (seconds for 51k rows, two runs each):
    no worker 2.44-2.51, one worker 2.61-2.74, two 2.20-2.24, three 2.13-2.36, four 2.34. One worker is the
    worst: it does all the work serially while the reading process mostly waits, and pays the pipe besides.
    """
    return max(1, min(8, os.cpu_count() or 1))


def _exit_with_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _adopt(template: ConnectorRunner, parent: int, open_bus: Callable[[], Bus]) -> None:
    global _template
    template.protector.keys.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    template.bus = open_bus()  # a Kafka producer's threads and sockets are the parent's
    _template = template
    threading.Thread(target=_exit_with_parent, args=(parent,), name="exit-with-parent", daemon=True).start()


def _prepare(config: ConnectorConfig, values: list[tuple[Any, ...]] | Unread) -> Prepared:
    if _template is None:
        raise RuntimeError("connector worker started without a runner")
    if isinstance(values, list):
        new = tuple.__new__
        rows = [new(Row, row) for row in values]
    else:
        rows = values.rows()  # read here, in the worker (sources.base.Unread)
    runner = _runners.get(config.name)
    if runner is None or runner.config != config:
        runner = _runners[config.name] = _template.sibling(config)
    prepared = runner.prepare(rows)
    runner.publish(prepared)
    return prepared


class Workers:
    """A pool of forked processes that prepare batches for any connector of one run."""

    def __init__(self, count: int, open_bus: Callable[[], Bus] | None = None) -> None:
        if count > 0 and open_bus is None:
            raise ValueError("worker processes need a way to open their own bus client")
        self.count = count
        self.open_bus = open_bus
        self._executor: ProcessPoolExecutor | None = None
        self._starting = threading.Lock()

    def __enter__(self) -> Workers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def start(self, template: ConnectorRunner) -> None:
        """Fork the workers now. Before connectors run in threads, this must be done from one thread:
        a fork while another thread holds a lock (SQLite's, the pool's) leaves that lock held forever in
        the child, which then hangs on its first query (seen here)."""
        if self.count > 0 and self.open_bus is not None:
            self._start(template, self.open_bus).submit(os.getpid).result()  # 'fork' starts them all at once

    def _start(self, template: ConnectorRunner, open_bus: Callable[[], Bus]) -> ProcessPoolExecutor:
        with self._starting:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.count,
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=functools.partial(_adopt, template, os.getpid(), open_bus),
                )
            return self._executor

    def prepared(self, runner: ConnectorRunner, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Prepared]]:
        """Each batch with its prepared form, in source order, with ``count`` batches prepared ahead."""
        if self.count <= 0 or self.open_bus is None:
            for batch in batches:
                yield batch, runner.prepare(batch.rows)
            return
        executor = self._start(runner, self.open_bus)
        pending: deque[tuple[Batch, Future[Any]]] = deque()
        try:
            for batch in batches:
                # A JSONL batch's lines and a SQL batch's key range cross the pipe unread, and the worker
                # reads them (sources.base.Unread). Other rows cross as plain tuples: a named tuple pickles
                # through its Python __getnewargs__ and unpickles through its Python __new__, 31k
                # instructions a row each way together (callgrind), and plain tuples took 0.14-0.20 s for
                # the benchmark's rows against 0.21-0.26.
                source = batch.source
                rows = [tuple(row) for row in source] if isinstance(source, list) else source
                pending.append((batch, executor.submit(_prepare, runner.config, rows)))
                if len(pending) > self.count:  # bounded read-ahead: memory stays flat whatever the source's size
                    ready, future = pending.popleft()
                    yield ready, future.result()
            while pending:
                ready, future = pending.popleft()
                yield ready, future.result()
        finally:
            for _, future in pending:
                future.cancel()
