"""Helpers shared by test modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from connectors.config import ConnectorConfig, FieldMapping


def run_hub(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the ``hub`` CLI in a fresh process, with no HUB_* setting but those given."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")} | env
    return subprocess.run(
        [sys.executable, "-m", "hub.cli.main", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def reader_config(name: str, key: str, **source: Any) -> ConnectorConfig:
    """A connector for a source reader's own tests: one field, its key, and the reader's settings."""
    return ConnectorConfig(
        name=name,
        agency=name.split(".")[0],
        system="test",
        dataset=name,
        key=key,
        fields={key: FieldMapping.model_validate({"from": key})},
        **source,
    )
