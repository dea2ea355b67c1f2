"""Synthetic agency source systems for the demo, tests and benchmarks.

Everything is derived from one seed and one reference time, so the same arguments always produce
the same bytes. Each agency's data is exposed the way such a system really is: police and health as
SQL databases, education as a paginated REST API, civil affairs as CSV/JSONL file drops. A few dirty
records are planted on purpose and listed (by position and reason, without personal data) in the
manifest, so connector tests know exactly what must end up in the dead-letter store.
"""

from hub.synthetic.generate import SourceManifest, generate_sources
from hub.synthetic.population import Resident, generate_population

__all__ = ["Resident", "SourceManifest", "generate_population", "generate_sources"]
