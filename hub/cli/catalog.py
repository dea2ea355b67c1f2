"""``hub catalog``: check the catalog and show its personal-information footprint at a glance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hub.catalog import Catalog, load_catalog
from hub.cli.console import out

app = typer.Typer(help="Inspect and validate the data catalog.", no_args_is_help=True)


def catalog_table(catalog: Catalog) -> Table:
    table = Table(title=f"Catalog ({catalog.digest[:12]})", title_justify="left")
    for column in ("dataset", "owner", "sharing", "retention", "fields", "PI", "sensitive PI", "share of PI"):
        table.add_column(column, justify="right" if column in ("fields", "PI", "sensitive PI") else "left")
    for dataset in catalog:
        personal, sensitive, total = (
            len(dataset.personal_fields),
            len(dataset.sensitive_fields),
            len(dataset.fields),
        )
        # A bar per dataset: sensitive fields red, other personal fields yellow, the rest dim.
        bar = "[red]" + "█" * sensitive + "[/][yellow]" + "█" * (personal - sensitive) + "[/][dim]"
        bar += "░" * (total - personal) + "[/]"
        table.add_row(
            dataset.id,
            dataset.owner,
            dataset.sharing.attribute.value,
            dataset.retention,
            str(total),
            str(personal),
            str(sensitive),
            bar,
        )
    return table


@app.command("validate")
def validate(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="catalog directory (default: the one shipped with the hub)")
    ] = None,
) -> None:
    """Load every catalog file, refuse unlabelled fields, and print each dataset's PI footprint."""
    catalog = load_catalog(directory)
    out.print(catalog_table(catalog))
    out.print(f"[green]catalog valid[/]: {len(catalog.datasets)} datasets of {len(catalog.agencies)} agencies")
