"""``hub demo``: the main job on embedded defaults, narrated step by step.

Today it generates the four agencies' source systems, reads each back through its own interface,
loads the catalog and prepares the store; later issues extend it until it runs the whole scenario.
"""

from __future__ import annotations

from pathlib import Path

from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hub.catalog import load_catalog
from hub.cli.catalog import catalog_table
from hub.cli.console import out
from hub.settings import Settings
from hub.store import RecordStore, create_store_engine, init_schema
from hub.synthetic import SourceManifest, generate_sources
from hub.synthetic.probe import probe_sources


def sources_table(manifest: SourceManifest, readable: dict[str, int]) -> Table:
    table = Table(
        title=f"Agency source systems (seed {manifest.seed}, as of {manifest.as_of})", title_justify="left"
    )
    for column in ("agency", "interface", "dataset", "records", "read back", "dirty", "where"):
        table.add_column(column, justify="right" if column in ("records", "read back", "dirty") else "left")
    for source in manifest.sources:
        got = readable.get(source.dataset, 0)
        mark = "[green]" if got == source.records else "[red]"
        table.add_row(
            source.agency,
            source.interface,
            source.dataset,
            f"{source.records:,}",
            f"{mark}{got:,}[/]",
            str(source.dirty),
            source.location,
        )
    return table


def run_demo(settings: Settings, residents: int, seed: int) -> None:
    out.print(
        Panel.fit("[bold]hub demo[/] — cross-agency data sharing on embedded defaults", border_style="cyan")
    )
    sources_dir = settings.var_dir / "sources"
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out
    ) as progress:
        task = progress.add_task(f"Generating {residents:,} residents and four agencies' systems", total=None)
        manifest = generate_sources(Path(sources_dir), residents=residents, seed=seed)
        progress.update(task, description="Reading every source back through its own interface")
        readable = probe_sources(Path(sources_dir))
        progress.update(task, description="Loading the catalog and preparing the store")
        catalog = load_catalog()
        engine = create_store_engine(settings.effective_database_url)
        init_schema(engine)
        RecordStore(engine, catalog).sync_catalog()
        progress.remove_task(task)
    out.print(sources_table(manifest, readable))
    out.print(catalog_table(catalog))
    population = ", ".join(f"{count:,} {group}" for group, count in manifest.population.items())
    out.print(f"Residents: {population}. Dirty records planted: {len(manifest.dirty_records)}.")
    out.print(
        f"Solitary elderly residents not out for 3+ days (for the welfare alert): "
        f"{len(manifest.expected_stay_in_alerts)}."
    )
    out.print(
        f"Store ready at [bold]{engine.url.render_as_string(hide_password=True)}[/]; "
        f"sources under {sources_dir}."
    )
    if any(readable.get(s.dataset) != s.records for s in manifest.sources):
        raise SystemExit("a source did not read back completely")
