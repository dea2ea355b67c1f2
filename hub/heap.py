"""Keeping the garbage collector off the long-lived heap during bulk work.

CPython's full collections walk every tracked object. After start-up that is mostly what never dies:
modules, SQLAlchemy metadata, the catalog, the policy engine. Ingestion allocates and frees millions of
short-lived dicts and tuples, which keeps triggering collections that re-walk that long-lived heap; on
this project's ingestion benchmark that cost about a sixth of the connector's time. ``gc.freeze`` moves
everything alive now into a permanent generation the collector skips (the technique CPython documents
for pre-fork servers), so only objects made during the work are scanned. Call it when start-up is over,
right before a long run; objects frozen are never collected, so it is for process-lifetime state.
The youngest generation's threshold is raised too (700 objects to 20,000): bulk work makes container
objects in the thousands per batch, and a collection every 700 of them was a few percent of the time.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Freeze what start-up built, so the collector only looks at what the work allocates; collect the
    young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 1000)
