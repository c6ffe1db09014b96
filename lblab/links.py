"""Links and addresses of lab nodes beyond what the topology gives them.

Link state goes over netlink (pyroute2) on the switch-side ends of lab links: they live in
the root namespace, so no namespace is entered, and setting one down drops the carrier on
both ends, as a pulled cable or a failed top-of-rack switch would. Extra addresses go into a
node's own namespace, with one `ip -batch` for any number of them.
"""

from __future__ import annotations

from typing import Any

from pyroute2 import IPRoute


def set_links(names: list[str], up: bool) -> None:
    """Set each named root-namespace interface up or down."""
    with IPRoute() as ipr:
        for name in names:
            found = ipr.link_lookup(ifname=name)
            if not found:
                raise KeyError(f"no interface {name!r} in the root namespace")
            ipr.link("set", index=found[0], state="up" if up else "down")


def add_addresses(lab: Any, node: str, ifname: str, addresses: list[str], prefix: int) -> None:
    """Give a node more addresses on one interface (users behind it, client sources); they
    are registered with the lab as its own, so traffic may be sent to them."""
    batch = "".join(f"addr add {a}/{prefix} dev {ifname}\n" for a in addresses)
    lab.run(node, ["ip", "-batch", "-"], stdin=batch)
    lab.extra_addresses.update(addresses)
