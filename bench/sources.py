"""Benchmark: how fast the synthetic agency sources generate (goal: 10,000 residents well under a minute).

Prints a table of timings and, on its last line, one JSON object. The baseline measured in the same run
is the population alone (names, IDs, addresses), so the ratio shows what writing the four systems adds.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on the import path and bench/keys.py would shadow the keys package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from hub.synthetic import generate_population, generate_sources  # noqa: E402
from hub.synthetic.generate import DEFAULT_AS_OF, DEFAULT_SEED  # noqa: E402


def main(residents: int = 10_000) -> dict[str, float | int]:
    started = time.perf_counter()
    generate_population(residents, DEFAULT_SEED, DEFAULT_AS_OF)
    population_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        manifest = generate_sources(Path(directory), residents=residents)
        sources_s = time.perf_counter() - started
    records = sum(s.records for s in manifest.sources)
    result: dict[str, float | int] = {
        "residents": residents,
        "source_records": records,
        "population_seconds": round(population_s, 3),
        "sources_seconds": round(sources_s, 3),
        "records_per_second": round(records / sources_s),
        "ratio_sources_to_population": round(sources_s / population_s, 2),
    }
    print(f"generated {records:,} source records for {residents:,} residents in {sources_s:.2f} s")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
