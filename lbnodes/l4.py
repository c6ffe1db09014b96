"""The L4 node: nftables DNAT + conntrack, configured from a typed config.

`L4Config` is validated where it is built; `render` turns it into a ruleset (the template
beside this module); `L4Node.apply` loads it in the node's namespace with `nft -f` and reads
back counters, conntrack occupancy and statistics for the results. Conntrack timeouts and
`tcp_syncookies` are per-namespace settings, so they change only inside the node.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from lblab.errors import UsageError
from lbnodes import conntrack_view
from lbnodes.common import TEMPLATES, Backend, hold_vip_quietly

__all__ = ["Backend", "L4Config", "L4Node", "render", "conntrack_object_size",
           "CT_SYSCTL", "TEMPLATES"]


HASH_FIELDS = {
    "saddr": "ip saddr",
    "saddr_sport": "ip saddr . tcp sport",
    "5tuple": "ip saddr . tcp sport . ip daddr . tcp dport",
}
DISPATCH = ("numgen", "jhash")
MODES = ("nat", "router", "forward", "dsr")
"""nat: DNAT + masquerade; router: stateful forwarding (conntrack drops what it never saw);
forward: stateless forwarding; dsr: L2 re-addressing to backends that answer directly."""
CT_SYSCTL = "/proc/sys/net/netfilter/nf_conntrack_{}"


@dataclass(frozen=True)
class L4Config:
    name: str
    vip: str
    port: int
    backends: tuple[Backend, ...]
    backend_ifname: str
    mode: str = "nat"
    dispatch: str = "numgen"
    hash_fields: str = "saddr_sport"
    hash_seed: int = 0
    snat: bool = True
    """Masquerade toward the backends so replies return through this node."""
    synproxy: bool = False
    flow_cap: int = 0
    """`ct count over N drop` for new flows: a cap that never evicts (0: none)."""
    ct_timeouts: dict[str, int] = field(default_factory=dict)
    """e.g. {"tcp_timeout_time_wait": 5}: names under net.netfilter.nf_conntrack_."""
    vip_on_loopback: bool = False
    """Anycast: the VIP lives on `lo` (with arp_ignore) so only the fabric steers to it."""
    tcp_loose: bool = True
    """False: a mid-stream packet of a flow this node never saw is invalid, not adopted."""
    front_ifname: str = ""
    back_mac: str = ""
    """DSR: the interface frames arrive on, and the source MAC they leave with."""
    flow_sets: bool = False
    """Router mode: keep the 4-tuple of every TCP SYN that opens a flow here (set `syn_seen`)
    and of every TCP packet dropped as invalid (set `invalid_seen`), as the packets carry
    them, so a run can say which router saw which flow and where each one died."""

    def __post_init__(self) -> None:
        problems = []
        try:
            ipaddress.IPv4Address(self.vip)
        except ValueError:
            problems.append(f"vip {self.vip!r} is not an IPv4 address")
        if not self.backends:
            problems.append("needs at least one backend")
        for b in self.backends:
            if b.weight < 1:
                problems.append(f"backend {b.name}: weight must be >= 1")
        if self.mode not in MODES:
            problems.append(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.mode == "dsr":
            if self.dispatch != "jhash":
                problems.append("dsr needs dispatch=jhash (numgen would spray one flow's "
                                "packets over backends: there is no conntrack to pin it)")
            if not self.front_ifname or not self.back_mac:
                problems.append("dsr needs front_ifname and back_mac")
            if any(not b.mac for b in self.backends):
                problems.append("dsr needs every backend's mac")
        if self.dispatch not in DISPATCH:
            problems.append(f"dispatch {self.dispatch!r} is not one of {', '.join(DISPATCH)}")
        if self.hash_fields not in HASH_FIELDS:
            problems.append(f"hash_fields {self.hash_fields!r} is not one of "
                            f"{', '.join(HASH_FIELDS)}")
        if len({b.port for b in self.backends}) > 1 and self.synproxy:
            problems.append("synproxy needs every backend on one port")
        for key in self.ct_timeouts:
            if not re.fullmatch(r"[a-z_0-9]+", key):
                problems.append(f"ct timeout name {key!r} is not a sysctl name")
        if self.flow_sets and self.mode != "router":
            problems.append("flow_sets needs mode=router (the sets are fed by conntrack)")
        if problems:
            raise UsageError(f"L4 node {self.name}: " + "; ".join(problems))

    @property
    def backend_port(self) -> int:
        return self.backends[0].port


def slot_map(backends: tuple[Backend, ...]) -> list[Backend]:
    """One map slot per unit of weight: `mod len(slots)` then picks in proportion."""
    return [b for b in backends for _ in range(b.weight)]


def render(cfg: L4Config) -> str:
    if cfg.mode in ("router", "forward"):
        return TEMPLATES.get_template("l4_router.nft.j2").render(cfg=cfg)
    slots = slot_map(cfg.backends)
    if cfg.dispatch == "numgen":
        dispatch = f"numgen inc mod {len(slots)}"
    else:
        dispatch = (f"jhash {HASH_FIELDS[cfg.hash_fields]} mod {len(slots)} "
                    f"seed {cfg.hash_seed:#x}")
    if cfg.mode == "dsr":
        entries = ", ".join(f"{i} : {b.mac}" for i, b in enumerate(slots))
        return TEMPLATES.get_template("l4_dsr.nft.j2").render(cfg=cfg, dispatch=dispatch,
                                                             slots=entries)
    entries = ", ".join(f"{i} : {b.ip} . {b.port}" for i, b in enumerate(slots))
    return TEMPLATES.get_template("l4_nat.nft.j2").render(cfg=cfg, dispatch=dispatch,
                                                         slots=entries)


FLOW_SETS = ("syn_seen", "invalid_seen")
TABLE_FAMILY = {"nat": "ip", "router": "ip", "forward": "ip", "dsr": "netdev"}


class L4Node:
    """An L4 node running in a lab host: apply the ruleset, read its state."""

    def __init__(self, lab: Any, cfg: L4Config) -> None:
        self.lab, self.cfg = lab, cfg

    def start(self) -> L4Node:
        node = self.cfg.name
        self._write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
        if self.cfg.vip_on_loopback:
            hold_vip_quietly(self.lab, node, self.cfg.vip)
        if self.cfg.synproxy or not self.cfg.tcp_loose:
            self._write_sysctl(CT_SYSCTL.format("tcp_loose"), "0")
        path = self.lab.file(f"{node}.nft")
        path.write_text(render(self.cfg))
        self.lab.run(node, ["nft", "-f", str(path)])
        self.set_ct_timeouts(self.cfg.ct_timeouts)
        rules = self.lab.run(node, ["nft", "list", "table", self.family, "lblab_l4"])
        if "counter" not in rules:
            raise UsageError(f"L4 node {node}: ruleset did not load")
        return self

    @property
    def family(self) -> str:
        return TABLE_FAMILY[self.cfg.mode]

    def set_ct_timeouts(self, timeouts: dict[str, int]) -> None:
        """Change conntrack timeouts in this node only (they are per-namespace)."""
        for key, value in timeouts.items():
            self._write_sysctl(CT_SYSCTL.format(key), str(value))

    def flush_conntrack(self) -> None:
        self.lab.run(self.cfg.name, ["conntrack", "-F"], check=False)

    def _write_sysctl(self, path: str, value: str) -> None:
        """A per-namespace sysctl: written inside the node, gone with its namespace."""
        self.lab.run(self.cfg.name, ["sysctl", "-q", "-w",
                                     f"{path.removeprefix('/proc/sys/').replace('/', '.')}"
                                     f"={value}"])

    # -- readers -------------------------------------------------------------------------
    def counters(self) -> dict[str, dict[str, int]]:
        out = self.lab.run(self.cfg.name, ["nft", "-j", "list", "counters", "table",
                                           self.family, "lblab_l4"])
        result = {}
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                c = item["counter"]
                result[c["name"]] = {"packets": c["packets"], "bytes": c["bytes"]}
        return result

    def flows(self, which: str) -> list[tuple[str, int, str, int]]:
        """The 4-tuples (saddr, sport, daddr, dport) in `syn_seen` or `invalid_seen`, as the
        packets carried them (an invalid reply is server -> client)."""
        if which not in FLOW_SETS:
            raise ValueError(f"no flow set {which!r}")
        out = self.lab.run(self.cfg.name, ["nft", "-j", "list", "set", self.family,
                                           "lblab_l4", which])
        found = []
        for item in json.loads(out)["nftables"]:
            for elem in item.get("set", {}).get("elem", []):
                saddr, sport, daddr, dport = elem["concat"] if isinstance(elem, dict) \
                    else elem["elem"]["val"]["concat"]
                found.append((saddr, int(sport), daddr, int(dport)))
        return found

    def _ct_view_pid(self) -> int | None:
        """The node's shell, whose /proc/PID/net is the node's namespace, if the kernel has
        the conntrack proc views (lbnodes/conntrack_view.py); else None."""
        pid = self.lab.host(self.cfg.name).pid
        return pid if conntrack_view.available(pid) else None

    def conntrack_count(self) -> int:
        pid = self._ct_view_pid()
        if pid is not None:
            return conntrack_view.entry_count(pid)
        return int(self.lab.run(self.cfg.name, ["cat", CT_SYSCTL.format("count")]).strip())

    def conntrack_stats(self) -> dict[str, int]:
        """`conntrack -S` summed over CPUs: found, insert, drop, early_drop, ..."""
        totals: dict[str, int] = {}
        for line in self.lab.run(self.cfg.name, ["conntrack", "-S"]).splitlines():
            for key, value in re.findall(r"(\w+)=(\d+)", line):
                if key != "cpu":
                    totals[key] = totals.get(key, 0) + int(value)
        return totals

    def conntrack_states(self) -> dict[str, int]:
        """Entries per TCP state (ESTABLISHED, TIME_WAIT, ...), from the kernel's view of the
        node's table, or `conntrack -L` where the kernel has none."""
        pid = self._ct_view_pid()
        if pid is not None:
            return conntrack_view.tcp_states(pid)
        return self.conntrack_states_by_tool()

    def conntrack_states_by_tool(self) -> dict[str, int]:
        """Entries per TCP state from `conntrack -L -p tcp` in the node."""
        states: dict[str, int] = {}
        out = self.lab.run(self.cfg.name, ["conntrack", "-L", "-p", "tcp"], check=False)
        for line in out.splitlines():
            cols = line.split()
            if len(cols) > 3 and cols[0] == "tcp":
                states[cols[3]] = states.get(cols[3], 0) + 1
        return states


def conntrack_object_size() -> int | None:
    """The kernel's own size of one conntrack entry, from /proc/slabinfo (bytes)."""
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                cols = line.split()
                if cols and cols[0] == "nf_conntrack":
                    return int(cols[3])
    except OSError:
        return None
    return None
