"""The lblab fabric controller: a thin os-ken (Ryu API) app.

Handlers are a few lines each: they hand events to the pure modules of this package
(`l2` for learning, `policies` and `flows` for the anycast VIP) and send what those return.

Configuration: the JSON file named by $LBLAB_CONTROLLER_CONFIG (written by lblab.lab):
  api_port, error_log, state_file, and optionally `fabrics`: a list of policies.Fabric, one
  per edge switch (an anycast VIP's edge; or each side of a routed tier, hashed separately).
The control API listens on 127.0.0.1 only; "dpid" in a body picks the fabric (default: the
first one):
  GET  /state                      datapaths, fabrics, learned MACs
  GET  /ready                      the connected datapaths, once each has answered a barrier
                                   sent after its fabric (so the table-miss and VIP flows
                                   are in effect): the lab's readiness check
  POST /fabric/policy              {"policy": ..., "fields": ...}
  POST /fabric/nodes/add|remove    {"name": ...}      (remove keeps the node running)
  POST /fabric/nodes/weight        {"name": ..., "weight": N}   (0 drains new flows)
  GET  /fabric/counters            per-bucket group stats and per-port stats of the edge
A change returns after the switch's barrier reply, so "returned" means "in effect".
A node whose port goes down (OpenFlow port status) is withdrawn at once and returns when
the link is back (`link_up` in its state), separately from the operator's add/remove.
Every change (API or port status) is made to `fabrics` (the wanted state) at once, without
yielding, and `_sync` alone sends the switch the difference from what it last sent
(`programmed`), one sender at a time: a port status arriving while an API change waits for
its barrier is composed with it, never overwritten by it.
Membership is persisted to state_file: a restarted controller re-sends the same state on
reconnect (flows are overwritten, groups add-or-modified, nothing deleted first).
Exceptions and OpenFlow errors go to error_log, which integration tests require to be empty.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import traceback
from dataclasses import replace

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.lib.packet import ethernet, packet
from os_ken.ofproto import ofproto_v1_5

from controllers import flows
from controllers.api import ApiError, make_wsgi
from controllers.l2 import FLOOD, MacTable
from controllers.policies import ConfigError, Fabric

LOG = logging.getLogger("lblab.controller")
REPLY_TIMEOUT_S = 5.0


def _load_config() -> dict:
    path = os.environ.get("LBLAB_CONTROLLER_CONFIG")
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


def guarded(fn):
    """Log any exception of an event handler to the error log instead of losing it."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - logged for the tests to see
            self.log_error(exc)

    return wrapper


class FabricApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_5.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = _load_config()
        self.macs = MacTable()
        self.datapaths: dict[int, object] = {}
        self.error_log = self.config.get("error_log")
        self.state_file = self.config.get("state_file")
        self.fabrics: dict[int, Fabric] = self._initial_fabrics()
        self.waiters: dict[int, tuple[hub.Event, list]] = {}
        self.programmed: dict[int, Fabric | None] = {}
        """What was last sent to each edge switch (None: unknown, send everything)."""
        self._senders: dict[int, hub.BoundedSemaphore] = {}
        port = self.config.get("api_port")
        if port:
            routes = {
                ("GET", "/state"): self.api_state,
                ("GET", "/ready"): self.api_ready,
                ("POST", "/fabric/policy"): self.api_policy,
                ("POST", "/fabric/nodes/add"): lambda b: self.api_node(b, active=True),
                ("POST", "/fabric/nodes/remove"): lambda b: self.api_node(b, active=False),
                ("POST", "/fabric/nodes/weight"): self.api_weight,
                ("GET", "/fabric/counters"): self.api_counters,
            }
            server = hub.WSGIServer(("127.0.0.1", int(port)), make_wsgi(routes, self.log_error))
            hub.spawn(server.serve_forever)

    def _initial_fabrics(self) -> dict[int, Fabric]:
        listed = self.config.get("fabrics", [])
        if self.state_file and os.path.exists(self.state_file):
            with open(self.state_file) as f:
                listed = json.load(f)
        fabrics = [Fabric.from_json(d) for d in listed]
        return {f.edge_dpid: f for f in fabrics}

    @property
    def fabric(self) -> Fabric | None:
        """The first fabric: what the API changes when a request names no dpid."""
        return next(iter(self.fabrics.values()), None)

    def _persist(self) -> None:
        if self.state_file:
            tmp = f"{self.state_file}.tmp"
            with open(tmp, "w") as f:
                json.dump([fab.to_json() for fab in self.fabrics.values()], f)
            os.replace(tmp, self.state_file)

    # -- errors --------------------------------------------------------------------------
    def log_error(self, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else "".join(traceback.format_exception(exc))
        LOG.error(text)
        if self.error_log:
            with open(self.error_log, "a") as f:
                f.write(text.rstrip() + "\n")

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    @guarded
    def on_error(self, ev):
        msg = ev.msg
        self.log_error(f"OpenFlow error from switch {msg.datapath.id}: type {msg.type} "
                       f"code {msg.code} data {bytes(msg.data)[:64].hex()}")

    # -- OpenFlow events -----------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def on_features(self, ev):
        dp = ev.msg.datapath
        self.datapaths[dp.id] = dp
        self.macs.forget(dp.id)
        parser, ofp = dp.ofproto_parser, dp.ofproto
        to_controller = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        self._add_flow(dp, 0, parser.OFPMatch(), to_controller)
        if dp.id in self.fabrics:
            self.programmed[dp.id] = None
            self._sync(dp.id, wait=False)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def on_packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        parser, ofp = dp.ofproto_parser, dp.ofproto
        pkt = packet.Packet(msg.data)
        eth = pkt.get_protocol(ethernet.ethernet)
        if eth is None:
            return
        in_port = msg.match["in_port"]
        fabric = self.fabrics.get(dp.id)
        if fabric is not None and flows.is_vip_arp_request(pkt, fabric):
            reply = flows.arp_reply(pkt, fabric)
            dp.send_msg(parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER,
                                            match=parser.OFPMatch(in_port=ofp.OFPP_CONTROLLER),
                                            actions=[parser.OFPActionOutput(in_port)],
                                            data=reply))
            return
        decision = self.macs.packet_in(dp.id, in_port, eth.src, eth.dst)
        out = ofp.OFPP_FLOOD if decision.out_port == FLOOD else decision.out_port
        actions = [parser.OFPActionOutput(out)]
        if decision.install:
            self._add_flow(dp, 10, parser.OFPMatch(eth_dst=eth.dst), actions)
        data = msg.data if msg.buffer_id == ofp.OFP_NO_BUFFER else None
        dp.send_msg(parser.OFPPacketOut(dp, buffer_id=msg.buffer_id, match=msg.match,
                                        actions=actions, data=data))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def on_port_status(self, ev):
        """A node's link went down or came back: withdraw it from, or return it to, the
        fabric at once (no API call, no health check: the switch saw the carrier)."""
        msg = ev.msg
        dp, ofp = msg.datapath, msg.datapath.ofproto
        fabric = self.fabrics.get(dp.id)
        if fabric is None:
            return
        up = msg.reason != ofp.OFPPR_DELETE and not msg.desc.state & ofp.OFPPS_LINK_DOWN
        new = fabric.with_port_state(msg.desc.port_no, up)
        if new == fabric:
            return
        self.fabrics[dp.id] = new
        self._persist()
        # Never wait here: this is the event loop that delivers the barrier replies an API
        # change may be waiting for. If a send is under way, its sender sends this too.
        self._sync(dp.id, wait=False)
        LOG.info("port %s of switch %s is %s", msg.desc.port_no, dp.id, "up" if up else "down")

    @set_ev_cls([ofp_event.EventOFPBarrierReply, ofp_event.EventOFPGroupStatsReply,
                 ofp_event.EventOFPPortStatsReply], MAIN_DISPATCHER)
    @guarded
    def on_reply(self, ev):
        waiter = self.waiters.get(ev.msg.xid)
        if waiter is not None:
            waiter[1].append(ev.msg)
            waiter[0].set()

    def _add_flow(self, dp, priority, match, actions):
        parser, ofp = dp.ofproto_parser, dp.ofproto
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        dp.send_msg(parser.OFPFlowMod(dp, priority=priority, match=match, instructions=inst))

    # -- programming the edge switch ------------------------------------------------------
    def _sync(self, dpid: int, *, wait: bool) -> None:
        """Send the edge switch what takes it from `programmed` to the wanted fabric, until
        the two agree. One sender per switch: with wait=False (event handlers) a busy sender
        is left to it; it re-reads the wanted state after every send, which can yield."""
        sender = self._senders.setdefault(dpid, hub.BoundedSemaphore(1))
        if not sender.acquire(blocking=wait):
            return
        try:
            while True:
                dp, wanted = self.datapaths.get(dpid), self.fabrics[dpid]
                sent = self.programmed.get(dpid)
                if dp is None or sent == wanted:
                    return
                *changes, _barrier = flows.program(dp, sent, wanted)
                self.programmed[dpid] = wanted
                for msg in changes:
                    dp.send_msg(msg)
        finally:
            sender.release()

    # -- requests that wait for the switch -----------------------------------------------
    def _request(self, dp, msg):
        """Send msg and wait for the reply with its xid (a barrier or a stats reply)."""
        dp.set_xid(msg)
        event, replies = hub.Event(), []
        self.waiters[msg.xid] = (event, replies)
        try:
            dp.send_msg(msg)
            if not event.wait(timeout=REPLY_TIMEOUT_S):
                raise ApiError(500, f"switch {dp.id} did not answer in {REPLY_TIMEOUT_S} s")
            return replies[0]
        finally:
            self.waiters.pop(msg.xid, None)

    def _target(self, body: dict) -> tuple[object, Fabric]:
        """The edge datapath and fabric a request is about ("dpid", default the first)."""
        if not self.fabrics:
            raise ApiError(400, "this controller was started without a fabric")
        dpid = body.get("dpid", self.fabric.edge_dpid)
        fabric = self.fabrics.get(dpid)
        if fabric is None:
            raise ApiError(400, f"no fabric on switch {dpid}; fabrics: {sorted(self.fabrics)}")
        dp = self.datapaths.get(dpid)
        if dp is None:
            raise ApiError(400, f"edge switch {dpid} is not connected")
        return dp, fabric

    def _apply(self, body: dict, change) -> dict:
        """Change the wanted fabric, send it, and return once the switch has it (barrier).

        The change is made to the current state with no yield in between, so a port status
        handled while this waits works on (and keeps) the changed state, and vice versa."""
        dp, fabric = self._target(body)
        try:
            new = change(fabric)
        except ConfigError as exc:
            raise ApiError(400, str(exc)) from None
        self.fabrics[new.edge_dpid] = new
        self._persist()
        self._sync(new.edge_dpid, wait=True)
        self._request(dp, dp.ofproto_parser.OFPBarrierRequest(dp))
        return self.fabrics[new.edge_dpid].to_json()

    # -- control API ---------------------------------------------------------------------
    def api_state(self, _body: dict) -> dict:
        return {"datapaths": sorted(self.datapaths), "macs": self.macs.to_json(),
                "fabric": self.fabric.to_json() if self.fabric else None,
                "fabrics": [f.to_json() for f in self.fabrics.values()]}

    def api_ready(self, _body: dict) -> dict:
        """Every connected switch programmed and its flows in effect: a fabric switch's
        difference is sent (waiting for a sender busy since its features reply), then each
        switch answers a barrier."""
        for dpid, dp in sorted(self.datapaths.items()):
            if dpid in self.fabrics:
                self._sync(dpid, wait=True)
            self._request(dp, dp.ofproto_parser.OFPBarrierRequest(dp))
        return {"datapaths": sorted(self.datapaths)}

    def api_policy(self, body: dict) -> dict:
        return self._apply(body, lambda f: replace(f, policy=body.get("policy", f.policy),
                                                   fields=body.get("fields", f.fields)))

    def api_node(self, body: dict, active: bool) -> dict:
        return self._apply(body, lambda f: f.with_node(str(body.get("name")), active=active))

    def api_weight(self, body: dict) -> dict:
        weight = body.get("weight")
        if not isinstance(weight, int) or weight < 0:
            raise ApiError(400, "weight must be an integer >= 0")
        return self._apply(body, lambda f: f.with_node(str(body.get("name")), weight=weight))

    def api_counters(self, body: dict) -> dict:
        dp, fabric = self._target(body)
        parser, ofp = dp.ofproto_parser, dp.ofproto
        ports = self._request(dp, parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY))
        result = {"ports": {str(s.port_no): {"tx_packets": s.tx_packets, "tx_bytes": s.tx_bytes,
                                             "rx_packets": s.rx_packets, "rx_bytes": s.rx_bytes}
                            for s in ports.body}, "buckets": {}}
        if fabric.policy in ("select13", "select15"):
            groups = self._request(dp, parser.OFPGroupStatsRequest(dp, 0, fabric.group_id))
            for g in groups.body:
                result["buckets"] = {str(i): b.packet_count
                                     for i, b in enumerate(g.bucket_stats)}
        return result
