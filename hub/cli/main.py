"""Entry point of the ``hub`` command. Expected failures print one readable line and exit 2."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from audit.log import AuditUnavailable, TamperedLog
from audit.timestamp import TimestampError
from audit.witness import WitnessRefusal
from hub.cli import audit, catalog, connectors, keys
from hub.cli.console import err
from hub.errors import HubError
from hub.settings import get_settings
from hub.synthetic.generate import DEFAULT_SEED
from keys.errors import KeysError

app = typer.Typer(
    help="hub: cross-agency data sharing that is provably lawful.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(catalog.app, name="catalog")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(connectors.app, name="connectors")


@app.command()
def demo(
    residents: Annotated[int, typer.Option(min=10, help="synthetic residents to generate")] = 10_000,
    seed: Annotated[int, typer.Option(help="seed for the synthetic sources")] = DEFAULT_SEED,
) -> None:
    """Run the hub's main job on embedded defaults and narrate it."""
    from hub.cli.demo import run_demo

    run_demo(get_settings(), residents, seed)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
) -> None:
    """Serve the hub API (OpenAPI docs at /docs)."""
    from hub.api import serving

    get_settings()  # fail on bad settings before binding a port
    serving.serve("hub.api.app:create_app", host=host, port=port, workers=workers, factory=True)


def main() -> None:
    try:
        app()
    except (HubError, KeysError, AuditUnavailable, TamperedLog, WitnessRefusal, TimestampError) as error:
        err.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
