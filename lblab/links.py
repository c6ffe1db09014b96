"""Link state changes over netlink (pyroute2), for faults that cut a node or a zone off.

Only the switch-side ends of lab links are touched: they live in the root namespace, so no
namespace is entered, and setting one down drops the carrier on both ends, as a pulled cable
or a failed top-of-rack switch would.
"""

from __future__ import annotations

from pyroute2 import IPRoute


def set_links(names: list[str], up: bool) -> None:
    """Set each named root-namespace interface up or down."""
    with IPRoute() as ipr:
        for name in names:
            found = ipr.link_lookup(ifname=name)
            if not found:
                raise KeyError(f"no interface {name!r} in the root namespace")
            ipr.link("set", index=found[0], state="up" if up else "down")
