from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from tests.support import run_hub

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "serve", "catalog"):
        assert command in result.output


def test_catalog_validate_prints_the_pi_table() -> None:
    result = runner.invoke(app, ["catalog", "validate"])
    assert result.exit_code == 0, result.output
    assert "police.incident" in result.output and "catalog valid" in result.output


def test_bad_setting_is_one_readable_line(tmp_path: Path) -> None:
    result = run_hub(["demo", "--residents", "20"], tmp_path, HUB_BUS="carrier-pigeon")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "HUB_BUS" in lines[0] and "carrier-pigeon" in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_catalog_is_one_readable_line(tmp_path: Path) -> None:
    (tmp_path / "agencies.toml").write_text('[agencies.police]\nname="P"\nname_zh="P"\njurisdiction="110100"\n')
    (tmp_path / "police.x.toml").write_text(
        'id="police.x"\ntitle="t"\nowner="police"\nsource_system="s"\ndescription="d"\nretention="P1Y"\n'
        'subject_field="idn"\nrecord_key_field="idn"\n[sharing]\nattribute="unconditional"\n'
        '[fields.idn]\ndescription="d"\ntype="id_number"\npi="sensitive"\nsensitive_category="specific_identity"\n'
        'role="subject_id"\nmask="MASK_ID"\n'
    )
    result = run_hub(["catalog", "validate", "--dir", str(tmp_path)], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: police.x.toml: field police.x.idn has no label 'grade'"


@pytest.mark.parametrize("residents", [60])
def test_demo_runs_on_embedded_defaults(tmp_path: Path, residents: int) -> None:
    result = run_hub(["demo", "--residents", str(residents)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Agency source systems" in result.stdout and "Store ready" in result.stdout
    assert (tmp_path / "var" / "hub.db").is_file()
    assert (tmp_path / "var" / "sources" / "manifest.json").is_file()


def test_demo_runs_again_on_its_own_state_and_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    first = run_hub(["demo", "--residents", "60"], tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_hub(["demo", "--residents", "60"], tmp_path)  # the first run's checkpoints and shredded key
    assert again.returncode == 0, again.stderr
    assert "Crypto-shredded that resident" in again.stdout
    foreign = tmp_path / "elsewhere"
    (foreign / "var").mkdir(parents=True)
    (foreign / "var" / "precious.db").write_bytes(b"a real hub's state")
    refused = run_hub(["demo", "--residents", "60"], foreign)
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines()[-1].startswith("error: ") and "HUB_VAR_DIR" in refused.stderr
    assert (foreign / "var" / "precious.db").read_bytes() == b"a real hub's state"


def test_dlq_replay_names_the_materialiser_as_it_names_a_connector(tmp_path: Path) -> None:
    from connectors.bus.base import records_topic
    from connectors.bus.local import LocalBus
    from hub.synthetic import generate_sources

    generate_sources(tmp_path / "var" / "sources", residents=30, seed=7)
    env = {"HUB_VAR_DIR": str(tmp_path / "var"), "HUB_MASTER_KEY": "5c" * 32}
    first = run_hub(["connectors", "run", "police"], tmp_path, **env)
    assert first.returncode == 0, first.stderr
    bus = LocalBus(tmp_path / "var" / "bus")
    bus.publish(records_topic("police.incident"), [(b"k", b"not an event")])
    bus.close()
    again = run_hub(["connectors", "run", "police"], tmp_path, **env)  # materialises: one letter more
    assert again.returncode == 0, again.stderr
    result = run_hub(["connectors", "dlq", "replay", "materialiser"], tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert "materialiser: 0 replayed, 1 still failing" in result.stdout
    assert "police.incident:" not in result.stdout  # only what was named
