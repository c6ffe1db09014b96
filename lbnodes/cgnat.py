"""A carrier-grade NAT node: all of its users leave through one public address.

It is not a load balancer, but it is what makes a load balancer's source-IP hashing fail: a
whole CGNAT is one "client" to every hash of the source address.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lbnodes.common import TEMPLATES


def render(name: str, public_ifname: str) -> str:
    return TEMPLATES.get_template("cgnat.nft.j2").render(name=name, public_ifname=public_ifname)


def start_cgnat(lab: Any, name: str, public_ifname: str) -> None:
    lab.run(name, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    path: Path = lab.file(f"{name}.nft")
    path.write_text(render(name, public_ifname))
    lab.run(name, ["nft", "-f", str(path)])
