"""Shared fixtures. Integration tests need root and a running Open vSwitch; they are skipped
with the reason when those are missing (CI provides both)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


def golden(name: str, text: str) -> None:
    """Compare `text` with tests/golden/NAME; LBLAB_UPDATE_GOLDEN=1 rewrites the file."""
    path = GOLDEN / name
    if os.environ.get("LBLAB_UPDATE_GOLDEN") == "1" or not path.exists():
        path.write_text(text)
        if os.environ.get("LBLAB_UPDATE_GOLDEN") != "1":
            pytest.fail(f"golden file {path} did not exist; written, check it and rerun")
    assert text == path.read_text(), f"rendering differs from {path}"


def _ovs_running() -> bool:
    try:
        return subprocess.run(["ovs-vsctl", "--timeout=3", "show"], capture_output=True,
                              check=False).returncode == 0
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0 and _ovs_running():
        return
    skip = pytest.mark.skip(reason="integration: needs root and a running Open vSwitch")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)
