"""az-failover's lab: the zones topology, its fabric, each variant's HAProxy configs, and the
running lab (`Zones`): LB nodes and backends per zone, the probe, the fault that fails one."""

from __future__ import annotations

from collections.abc import Callable

from controllers.policies import Fabric, Node
from experiments.az_failover.params import BACKEND_PORT, Params
from lblab.counters import link_stats
from lblab.driver import LabPlan
from lblab.lab import ControllerSpec, Lab
from lblab.links import set_links
from lblab.ready import wait_until
from lblab.workloads.handles import BackendHandle, start_backend
from lbnodes.common import hold_vip_quietly
from lbnodes.l7 import L7Config, L7Node, Server
from topologies.zones import (
    ANYCAST_VIP,
    ANYCAST_VMAC,
    EDGE_DPID,
    ROLES,
    ZonesTopo,
    backend_ip,
    backend_name,
    core_intf,
    edge_intf,
    lb_edge_port,
    lb_mac,
    lb_name,
    uplink_intf,
)


def servers_for(p: Params, kind: str, zone: int) -> tuple[Server, ...]:
    out = []
    for z in range(1, p.zones + 1):
        for k in range(1, p.backends + 1):
            remote = z != zone and kind != "naive"
            limit = kind == "surge"
            out.append(Server(backend_name(z, k), backend_ip(z, k), BACKEND_PORT,
                              backup=remote, maxconn=p.workers + 1 if limit else 0))
    return tuple(out)


def l7_config(p: Params, kind: str, zone: int) -> L7Config:
    return L7Config(lb_name(zone), ANYCAST_VIP, 80, servers_for(p, kind, zone),
                    check=True, check_inter_ms=p.check_inter_ms, check_fall=p.check_fall,
                    check_rise=2, timeout_check_ms=p.check_inter_ms, retries=1,
                    redispatch=True, allbackups=True, timeout_connect_ms=1000,
                    max_queued=p.surge_queue if kind == "surge" else 0,
                    timeout_queue_ms=int(p.timeout_s * 1000))


def fabric(p: Params) -> Fabric:
    nodes = tuple(Node(lb_name(z), lb_edge_port(z), lb_mac(z), bucket_id=z)
                  for z in range(1, p.zones + 1))
    return Fabric(EDGE_DPID, ANYCAST_VIP, ANYCAST_VMAC, nodes=nodes, policy="select15",
                  fields="5tuple")


def lab_plan(p: Params) -> LabPlan:
    return LabPlan(ZonesTopo(zones=p.zones, backends=p.backends),
                   ControllerSpec(config={"fabrics": [fabric(p).to_json()]}), ROLES)


def survivors(p: Params) -> list[str]:
    """The backends of the zones that do not fail."""
    return [backend_name(z, k) for z in range(1, p.zones + 1) if z != p.failed_zone
            for k in range(1, p.backends + 1)]


class Zones:
    """The running lab: LB nodes and backends per zone, and the fault that fails one."""

    def __init__(self, lab: Lab, p: Params, seed: int) -> None:
        self.lab, self.p, self.seed = lab, p, seed
        self.backends: dict[int, list[BackendHandle]] = {}
        self.lbs: dict[int, L7Node] = {}
        self.kind = ""
        # The VIP on each LB node's lo, never answered by ARP (the fabric steers it), and
        # known to the lab as its own so the client may target it: Mininet does not see
        # addresses on lo, and the topology has no way to declare them.
        lab.extra_addresses.add(ANYCAST_VIP)
        for z in range(1, p.zones + 1):
            hold_vip_quietly(lab, lb_name(z), ANYCAST_VIP)
            self.backends[z] = [self._backend(z, k) for k in range(1, p.backends + 1)]

    def _backend(self, z: int, k: int) -> BackendHandle:
        p = self.p
        return start_backend(self.lab, backend_name(z, k), backend_ip(z, k), port=BACKEND_PORT,
                             workers=p.workers, queue_limit=p.queue, service_ms=p.service_ms,
                             service_dist="exponential", seed=self.seed + 10 * z + k)

    def prepare(self, kind: str) -> None:
        """Every zone up, every LB node on `kind`'s config, every backend idle."""
        fz = self.p.failed_zone
        if not self.backends[fz]:
            set_links([edge_intf(fz), uplink_intf(fz)], up=True)
            self.backends[fz] = [self._backend(fz, k) for k in range(1, self.p.backends + 1)]
        for z in range(1, self.p.zones + 1):
            if self.kind != kind or z not in self.lbs:
                if z in self.lbs:
                    self.lbs.pop(z).stop()
                self.lbs[z] = L7Node(self.lab, l7_config(self.p, kind, z)).start()
        self.kind = kind
        wait_until(lambda: all(n["link_up"] and n["active"] for n in self.fabric_nodes()),
                   timeout=10, what="the controller to count every zone's LB node live")
        wait_until(self._all_servers_up, timeout=10 + 4 * self.p.check_inter_ms / 1000,
                   what="every HAProxy to see every backend up")
        drain = self.p.queue * self.p.service_ms / 1000 / self.p.workers + 10
        wait_until(lambda: all(s["busy"] == 0 and s["queued"] == 0
                               for s in self.capacity().values()),
                   timeout=drain, what="backends to finish the previous run's work")

    def fabric_nodes(self) -> list[dict]:
        return self.lab.controller_api_call("GET", "/state")["fabric"]["nodes"]

    def _all_servers_up(self) -> bool:
        return all(row["status"] == "UP" for lb in list(self.lbs.values())
                   for row in lb.api.servers(lb.backend).values())

    def capacity(self, names: list[str] | None = None) -> dict[str, dict]:
        """Capacity counters of the running backends (or of those named)."""
        return {h.node: h.stats()["capacity"] for hs in list(self.backends.values())
                for h in list(hs) if names is None or h.node in names}

    def fail(self) -> None:
        """Zone failure: links down first (the zone is cut off at once), then its processes
        stop. Runs on the variant's timeline, which records when it fired."""
        fz = self.p.failed_zone
        set_links([edge_intf(fz), uplink_intf(fz)], up=False)
        self.lbs.pop(fz).stop()
        for h in self.backends[fz]:
            h.stop()
        self.backends[fz] = []

    def failed_servers_down(self) -> bool | None:
        """Does a survivor's HAProxy hold every server of the failed zone DOWN?"""
        fz = self.p.failed_zone
        survivor = next((lb for z, lb in list(self.lbs.items()) if z != fz), None)
        if survivor is None:
            return None
        rows = survivor.api.servers(survivor.backend)
        failed = [backend_name(fz, k) for k in range(1, self.p.backends + 1)]
        return all(rows[name]["status"].startswith("DOWN") for name in failed)

    def probe(self) -> Callable[[], dict]:
        """A sampler probe of cumulative counters, counted from now (just before the client
        starts): the survivors' arrivals and busy worker-seconds (not the failing zone's:
        they stop under our feet), the bytes that left each zone, whether a survivor's
        HAProxy holds the failed zone's servers down, and whether the fabric still counts
        the failed zone's LB node live."""
        names = survivors(self.p)
        cores = [core_intf(z) for z in range(1, self.p.zones + 1)]
        base_bytes = {n: s["rx_bytes"] for n, s in link_stats(cores).items()}
        base = self.capacity(names)
        failed_lb = lb_name(self.p.failed_zone)

        def probe() -> dict:
            cap = self.capacity(names)
            live = {n["name"]: n["link_up"] and n["active"] for n in self.fabric_nodes()}
            return {
                "arrived": sum(cap[n]["arrived"] - base[n]["arrived"] for n in names),
                "busy_s": sum(cap[n]["busy_s"] - base[n]["busy_s"] for n in names),
                "cross_bytes": sum(s["rx_bytes"] - base_bytes[n]
                                   for n, s in link_stats(cores).items()),
                "failed_down": self.failed_servers_down(),
                "failed_live": live.get(failed_lb, False)}

        return probe
