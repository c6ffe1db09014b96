"""The core imports nothing from the parts it drives: topologies, controllers, LB nodes and
experiments are found through entry points (lblab.catalogue), never imported by lblab/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).parents[2] / "lblab"
OUTSIDE = {"topologies", "controllers", "lbnodes", "experiments"}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_imports_no_driven_part(path):
    assert not imported(path) & OUTSIDE, f"{path} imports {imported(path) & OUTSIDE}"


def test_the_check_sees_an_outside_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from lbnodes.smoke import smoke_lab\n")
    assert imported(bad) & OUTSIDE == {"lbnodes"}
