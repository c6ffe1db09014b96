"""A run's raw data: one folder per variant, `raw/<variant>/`, holding tables and documents.

A *table* is a CSV (`NAME.csv`: client records, sampled counters, per-connection probes); a
*document* is a JSON file (`NAME.json`: a client summary, the variant's timeline, counter
snapshots). Analysis always reads raw data back from the folder, never from what `measure`
still holds in memory, so `lblab plot` / re-analysis and the unit tests (which build `Raw`
from synthetic rows) see exactly what a live run sees.

CSV cells are typed on reading by one rule: empty -> None, `True`/`False` -> bool, an integer
literal -> int, a number -> float, anything else stays a string.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lblab.results import atomic_write

RAW = "raw"
LAB_DOCS = "_lab"
"""raw/_lab/: documents about the lab rather than one variant (object sizes, snapshots)."""
_INT = re.compile(r"[+-]?\d+")


def cell(text: str) -> Any:
    """One CSV cell, typed (see the module docstring)."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    if _INT.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def write_table(path: Path, rows: Iterable[Mapping[str, Any]],
                fields: list[str] | None = None) -> Path:
    rows = list(rows)
    if fields is None:
        fields = []
        for row in rows:
            fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    atomic_write(path, buf.getvalue())
    return path


def read_table(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return [{k: cell(v) for k, v in row.items()} for row in csv.DictReader(f)]


def variant_dir(root: Path, variant: str) -> Path:
    """Where one variant's raw data lives. Variant names are checked by the driver to be
    usable as folder names."""
    return root / RAW / variant


@dataclass
class RawVariant:
    """One variant's tables and documents, as analysis sees them."""

    name: str
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    docs: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str) -> list[dict[str, Any]]:
        if name not in self.tables:
            raise KeyError(f"variant {self.name}: no raw table {name!r} "
                           f"(has {sorted(self.tables)})")
        return self.tables[name]

    def doc(self, name: str, default: Any = KeyError) -> Any:
        if name not in self.docs:
            if default is KeyError:
                raise KeyError(f"variant {self.name}: no raw document {name!r} "
                               f"(has {sorted(self.docs)})")
            return default
        return self.docs[name]

    @classmethod
    def load(cls, folder: Path) -> RawVariant:
        tables = {p.stem: read_table(p) for p in sorted(folder.glob("*.csv"))}
        docs = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
        return cls(folder.name, tables, docs)


@dataclass
class Raw:
    """A repetition's raw data: each variant's, in the order the variants ran, and the
    lab-level documents."""

    variants: dict[str, RawVariant] = field(default_factory=dict)
    lab: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> RawVariant:
        return self.variants[name]

    def __contains__(self, name: object) -> bool:
        return name in self.variants

    def __iter__(self):
        return iter(self.variants)

    def items(self):
        return self.variants.items()

    @classmethod
    def of(cls, tables: dict[str, dict[str, list[dict]]] | None = None,
           docs: dict[str, dict[str, Any]] | None = None,
           lab: dict[str, Any] | None = None) -> Raw:
        """Synthetic raw data for tests: {variant: {table: rows}}, {variant: {doc: data}}."""
        names = list(dict.fromkeys([*(tables or {}), *(docs or {})]))
        return cls({n: RawVariant(n, dict((tables or {}).get(n, {})),
                                  dict((docs or {}).get(n, {}))) for n in names}, dict(lab or {}))


def load_raw(folder: Path, order: list[str] | None = None) -> Raw:
    """Every variant's raw data under `folder/raw/`, in `order` when given (the plan's)."""
    root = folder / RAW
    found = ({p.name: p for p in root.iterdir() if p.is_dir() and p.name != LAB_DOCS}
             if root.is_dir() else {})
    names = [n for n in (order or sorted(found)) if n in found]
    lab_dir = root / LAB_DOCS
    lab = ({p.stem: json.loads(p.read_text()) for p in sorted(lab_dir.glob("*.json"))}
           if lab_dir.is_dir() else {})
    return Raw({n: RawVariant.load(found[n]) for n in names}, lab)
