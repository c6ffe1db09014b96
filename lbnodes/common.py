"""What the LB nodes share: the backend record and the template environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


@dataclass(frozen=True)
class Backend:
    """A server behind an LB node (an HAProxy `server`, an nftables map entry)."""

    name: str
    ip: str
    port: int = 80
    weight: int = 1
    mac: str = ""
    """Needed in DSR mode, where the node picks a backend by its MAC."""
