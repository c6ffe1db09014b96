"""What the LB nodes share: the backend record and the template environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def hold_vip_quietly(lab: Any, node: str, vip: str) -> None:
    """The node holds `vip` on lo and never answers ARP for it (arp_ignore=1,
    arp_announce=2), so only what steers traffic on purpose (the fabric's select group, a DSR
    LB rewriting MACs) brings it VIP packets. Per-namespace settings, gone with the node.
    The VIP becomes one of the lab's own addresses, so load may be sent to it."""
    for key, value in (("arp_ignore", "1"), ("arp_announce", "2")):
        lab.run(node, ["sysctl", "-q", "-w", f"net.ipv4.conf.all.{key}={value}"])
    lab.run(node, ["ip", "addr", "add", f"{vip}/32", "dev", "lo"])
    lab.extra_addresses.add(vip)
