"""The lblab fabric controller: a thin os-ken (Ryu API) app.

Each handler is a few lines that hand the event to the pure modules of this package and send
back what they return. Configuration comes from the JSON file named by
$LBLAB_CONTROLLER_CONFIG (written by lblab.lab); the control API listens on 127.0.0.1 only.
Any exception in a handler goes to the error log that integration tests require to be empty.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import traceback

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.lib.packet import ethernet, packet
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_5

from controllers.api import make_wsgi
from controllers.l2 import FLOOD, MacTable

LOG = logging.getLogger("lblab.controller")


def _load_config() -> dict:
    path = os.environ.get("LBLAB_CONTROLLER_CONFIG")
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


class FabricApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION, ofproto_v1_5.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = _load_config()
        self.macs = MacTable()
        self.datapaths: dict[int, object] = {}
        self.error_log = self.config.get("error_log")
        port = self.config.get("api_port")
        if port:
            routes = {("GET", "/state"): self.api_state}
            server = hub.WSGIServer(("127.0.0.1", int(port)), make_wsgi(routes, self.log_error))
            hub.spawn(server.serve_forever)

    # -- errors --------------------------------------------------------------------------
    def log_error(self, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(exc))
        LOG.error(text)
        if self.error_log:
            with open(self.error_log, "a") as f:
                f.write(text)

    @staticmethod
    def guarded(fn):
        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - logged for the tests to see
                self.log_error(exc)
        return wrapper

    # -- OpenFlow events -----------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def on_features(self, ev):
        dp = ev.msg.datapath
        self.datapaths[dp.id] = dp
        self.macs.forget(dp.id)
        parser, ofp = dp.ofproto_parser, dp.ofproto
        dp.send_msg(parser.OFPFlowMod(dp, command=ofp.OFPFC_DELETE, table_id=ofp.OFPTT_ALL,
                                      out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                                      match=parser.OFPMatch()))
        to_controller = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        self._add_flow(dp, 0, parser.OFPMatch(), to_controller)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def on_packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        parser, ofp = dp.ofproto_parser, dp.ofproto
        eth = packet.Packet(msg.data).get_protocol(ethernet.ethernet)
        if eth is None:
            return
        in_port = msg.match["in_port"]
        decision = self.macs.packet_in(dp.id, in_port, eth.src, eth.dst)
        out = ofp.OFPP_FLOOD if decision.out_port == FLOOD else decision.out_port
        actions = [parser.OFPActionOutput(out)]
        if decision.install:
            self._add_flow(dp, 10, parser.OFPMatch(eth_dst=eth.dst), actions)
        data = msg.data if msg.buffer_id == ofp.OFP_NO_BUFFER else None
        if dp.ofproto.OFP_VERSION >= ofproto_v1_5.OFP_VERSION:
            out_msg = parser.OFPPacketOut(dp, buffer_id=msg.buffer_id, match=msg.match,
                                          actions=actions, data=data)
        else:
            out_msg = parser.OFPPacketOut(dp, buffer_id=msg.buffer_id, in_port=in_port,
                                          actions=actions, data=data)
        dp.send_msg(out_msg)

    def _add_flow(self, dp, priority, match, actions):
        parser, ofp = dp.ofproto_parser, dp.ofproto
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        dp.send_msg(parser.OFPFlowMod(dp, priority=priority, match=match, instructions=inst))

    # -- control API ---------------------------------------------------------------------
    def api_state(self, _body: dict) -> dict:
        return {"datapaths": sorted(self.datapaths), "macs": self.macs.to_json()}
