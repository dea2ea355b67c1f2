"""``hub connectors``: pull the agencies' systems onto the bus, into the store; status; dead letters."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.bus.base import records_topic
from connectors.bus.local import LocalBus
from connectors.deadletters import list_dead_letters, replay
from connectors.materialiser import GROUP, replay_letters
from connectors.pipeline import Pipeline, places
from connectors.runner import ConnectorRunner, RunReport
from hub.cli.console import out
from hub.settings import Settings, get_settings

app = typer.Typer(help="Connectors: pull agency systems onto the bus and into the store.", no_args_is_help=True)
dlq = typer.Typer(help="Dead letters: rows that could not become records.", no_args_is_help=True)
app.add_typer(dlq, name="dlq")


@contextlib.contextmanager
def pipeline(settings: Settings) -> Iterator[Pipeline]:
    built = Pipeline.from_settings(settings)
    try:
        yield built
    finally:
        built.bus.close()


def run_with_progress(settings: Settings, built: Pipeline, names: list[str]) -> list[RunReport]:
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[line]}"), TimeElapsedColumn())
    with Progress(*columns, console=out) as progress:
        tasks: dict[str, TaskID] = {}

        def update(report: RunReport) -> None:
            if report.connector not in tasks:
                tasks[report.connector] = progress.add_task(report.connector, total=None, line="")
            line = (
                f"{report.rows:,} rows, {report.rate:,.0f}/s, {report.dead_letters} dead letters, "
                f"{sum(report.dropped.values()):,} field values dropped"
            )
            progress.update(tasks[report.connector], line=line)

        reports = built.run(settings, names, update)
        task = progress.add_task("materialiser", total=None, line="")
        built.materialise(lambda n: progress.update(task, line=f"{n:,} records applied to the store"))
    return reports


def reports_table(reports: list[RunReport]) -> Table:
    table = Table(title="Connector runs", title_justify="left")
    for column in ("connector", "rows", "published", "dead letters", "erased", "dropped (uncatalogued source fields)"):
        table.add_column(
            column, justify="right" if column in ("rows", "published", "dead letters", "erased") else "left"
        )
    for r in reports:
        dropped = ", ".join(f"{name} x{count:,}" for name, count in sorted(r.dropped.items())) or "—"
        table.add_row(r.connector, f"{r.rows:,}", f"{r.published:,}", str(r.dead_letters), str(r.erased), dropped)
    return table


@app.command("run")
def run(
    agencies: Annotated[list[str] | None, typer.Argument(help="agencies or connector names; default all")] = None,
) -> None:
    """Pull new rows from each source, protect them, publish them, and materialise them into the store."""
    settings = get_settings()
    with pipeline(settings) as built:
        out.print(reports_table(run_with_progress(settings, built, agencies or [])))


@app.command("status")
def status() -> None:
    """Watermarks, last errors, bus lag of the materialiser, open dead letters, per connector."""
    settings = get_settings()
    with pipeline(settings) as built, places(settings, list(built.configs.values())) as where:
        table = Table(title=f"Connectors ({built.bus.name})", title_justify="left")
        for column in ("connector", "checkpoint", "bus lag", "open dead letters", "last error"):
            table.add_column(column)
        committed = built.bus.committed(GROUP) if isinstance(built.bus, LocalBus) else {}
        for config in built.configs.values():
            runner = ConnectorRunner(
                config.resolve(**where), built.catalog, built.protector, built.bus, built.store.engine
            )
            lag = "n/a (Kafka: see the broker)"
            if isinstance(built.bus, LocalBus):
                topic = records_topic(config.dataset)
                ends = built.bus.end_offsets(topic)
                lag = f"{sum(end - committed.get(f'{topic}/{p}', 0) for p, end in ends.items()):,}"
            open_letters = sum(1 for letter in list_dead_letters(built.store.engine) if letter.connector == config.name)
            checkpoint = ", ".join(f"{k}={v}" for k, v in runner.checkpoint().items()) or "not run yet"
            table.add_row(config.name, checkpoint, lag, str(open_letters), runner.last_error() or "—")
        out.print(table)


@dlq.command("list")
def dlq_list() -> None:
    """Open dead letters: where and why (the rows themselves stay sealed)."""
    settings = get_settings()
    with pipeline(settings) as built:
        table = Table(title="Open dead letters", title_justify="left")
        for column in ("id", "connector", "position", "reason", "since"):
            table.add_column(column)
        for letter in list_dead_letters(built.store.engine):
            table.add_row(
                str(letter.id),
                letter.connector,
                letter.position,
                letter.reason,
                letter.created_at.isoformat(timespec="seconds"),
            )
        out.print(table)


@dlq.command("replay")
def dlq_replay(
    agencies: Annotated[
        list[str] | None, typer.Argument(help=f"agencies or connector names; {GROUP!r} for the materialiser's")
    ] = None,
) -> None:
    """Re-run open dead letters through the current mapping and catalog; publish and materialise what passes now."""
    settings = get_settings()
    names = agencies or []
    connectors = [n for n in names if n != GROUP]
    with pipeline(settings) as built:
        configs = built.select(connectors) if connectors or not names else []
        with places(settings, configs) as where:
            for config in configs:
                runner = ConnectorRunner(
                    config.resolve(**where), built.catalog, built.protector, built.bus, built.store.engine
                )
                replayed, failing, superseded = replay(runner)
                out.print(
                    f"{config.name}: {replayed} replayed, {failing} still failing, "
                    f"{superseded} superseded (taken in since by a later pull)"
                )
        if not names or GROUP in names:
            # Read again from the bus at their offsets and applied with the current catalog.
            replayed, failing = replay_letters(built.bus, built.store)
            out.print(f"{GROUP}: {replayed} replayed, {failing} still failing")
        built.materialise()
