"""The os-ken app built with fake datapaths: every handler and API route is called, and
nothing lands in the error log."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from os_ken.lib.packet import arp, ethernet, packet

from controllers.api import ApiError
from lbnodes.anycast import fabric as anycast_fabric
from tests.unit.test_flows import FakeDatapath


class AnsweringDatapath(FakeDatapath):
    """Answers barriers and stats requests at once, as a switch would."""

    def __init__(self, app, dpid):
        super().__init__()
        self.app, self.id = app, dpid

    def send_msg(self, msg):
        super().send_msg(msg)
        name = type(msg).__name__
        if name == "OFPBarrierRequest":
            reply = SimpleNamespace(xid=msg.xid)
        elif name == "OFPPortStatsRequest":
            reply = SimpleNamespace(xid=msg.xid, body=[SimpleNamespace(
                port_no=101, tx_packets=5, tx_bytes=500, rx_packets=1, rx_bytes=60)])
        elif name == "OFPGroupStatsRequest":
            reply = SimpleNamespace(xid=msg.xid, body=[SimpleNamespace(
                bucket_stats=[SimpleNamespace(packet_count=3)])])
        else:
            return
        self.app.on_reply(SimpleNamespace(msg=reply))


@pytest.fixture
def app(tmp_path, monkeypatch):
    cfg = {"error_log": str(tmp_path / "errors.log"), "state_file": str(tmp_path / "state.json"),
           "fabrics": [anycast_fabric(4, 1, "select15").to_json()]}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    (tmp_path / "errors.log").write_text("")
    monkeypatch.setenv("LBLAB_CONTROLLER_CONFIG", str(tmp_path / "c.json"))
    from controllers.fabric_app import FabricApp

    app = FabricApp()
    yield app
    assert (tmp_path / "errors.log").read_text() == "", "the app logged errors"


def connect(app, dpid):
    dp = AnsweringDatapath(app, dpid)
    app.on_features(SimpleNamespace(msg=SimpleNamespace(datapath=dp)))
    return dp


def arp_request(target):
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src="00:00:00:00:00:0a",
                                     ethertype=0x0806))
    p.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac="00:00:00:00:00:0a",
                           src_ip="10.0.1.1", dst_mac="00:00:00:00:00:00", dst_ip=target))
    p.serialize()
    return bytes(p.data)


def packet_in(app, dp, data, port=1):
    msg = SimpleNamespace(datapath=dp, data=data, match={"in_port": port},
                          buffer_id=dp.ofproto.OFP_NO_BUFFER)
    app.on_packet_in(SimpleNamespace(msg=msg))


def test_edge_switch_gets_the_fabric_and_others_only_learning(app):
    edge, other = connect(app, 1), connect(app, 2)
    assert any(type(m).__name__ == "OFPGroupMod" for m in edge.sent)
    assert not any(type(m).__name__ == "OFPGroupMod" for m in other.sent)
    for m in edge.sent + other.sent:
        m.serialize()


def test_vip_arp_is_answered_and_other_packets_are_learned(app):
    dp = connect(app, 1)
    packet_in(app, dp, arp_request("10.0.0.100"))
    reply = dp.sent[-1]
    assert type(reply).__name__ == "OFPPacketOut"
    assert packet.Packet(reply.data).get_protocol(arp.arp).src_mac == app.fabric.vmac
    packet_in(app, dp, arp_request("10.0.1.2"), port=3)
    assert app.macs.tables[1]["00:00:00:00:00:0a"] == 3


def test_api_changes_membership_and_policy_and_persists_them(app, tmp_path):
    connect(app, 1)
    assert app.api_node({"name": "lb4"}, active=True)["nodes"][3]["active"] is True
    assert app.api_policy({"policy": "maglev"})["policy"] == "maglev"
    assert app.api_weight({"name": "lb1", "weight": 2})["nodes"][0]["weight"] == 2
    (saved,) = json.loads((tmp_path / "state.json").read_text())
    assert saved["policy"] == "maglev" and saved["nodes"][3]["active"]
    counters = app.api_counters({})
    assert counters["ports"]["101"]["tx_packets"] == 5
    assert app.api_state({})["fabric"]["policy"] == "maglev"


def test_restarted_app_resumes_from_its_state_file(app, tmp_path):
    connect(app, 1)
    app.api_node({"name": "lb4"}, active=True)
    from controllers.fabric_app import FabricApp

    again = FabricApp()
    assert [n.active for n in again.fabric.nodes] == [True] * 4


@pytest.mark.parametrize(("call", "message"), [
    (lambda a: a.api_node({"name": "lb9"}, active=True), "no LB node named 'lb9'"),
    (lambda a: a.api_policy({"policy": "ecmp"}), "policy 'ecmp' is not one of"),
    (lambda a: a.api_weight({"name": "lb1", "weight": -1}), "weight must be an integer >= 0"),
])
def test_api_refuses_bad_requests(app, call, message):
    connect(app, 1)
    with pytest.raises(ApiError, match=message):
        call(app)


def test_api_names_an_unknown_fabric(app):
    connect(app, 1)
    with pytest.raises(ApiError, match=r"no fabric on switch 7; fabrics: \[1\]"):
        app.api_node({"name": "lb4", "dpid": 7}, active=True)


def test_api_says_when_the_edge_is_not_connected(app):
    with pytest.raises(ApiError, match="edge switch 1 is not connected"):
        app.api_node({"name": "lb4"}, active=True)


def test_switch_errors_are_logged(app, tmp_path):
    dp = connect(app, 1)
    app.on_error(SimpleNamespace(msg=SimpleNamespace(datapath=dp, type=4, code=5, data=b"x")))
    assert "OpenFlow error from switch 1" in (tmp_path / "errors.log").read_text()
    (tmp_path / "errors.log").write_text("")


def port_status(app, dp, port, link_down, reason="MODIFY"):
    ofp = dp.ofproto
    desc = SimpleNamespace(port_no=port, state=ofp.OFPPS_LINK_DOWN if link_down else 0)
    msg = SimpleNamespace(datapath=dp, desc=desc, reason=getattr(ofp, f"OFPPR_{reason}"))
    app.on_port_status(SimpleNamespace(msg=msg))


def live_names(app):
    return [n.name for n in app.fabric.live]


def test_a_node_whose_link_goes_down_is_withdrawn_and_returns_with_it(app, tmp_path):
    dp = connect(app, 1)
    port = app.fabric.node("lb2").port
    before = len(dp.sent)
    port_status(app, dp, port, link_down=True)
    assert live_names(app) == ["lb1", "lb3"]
    assert "OFPGroupMod" in [type(m).__name__ for m in dp.sent[before:]]  # reprogrammed
    (saved,) = json.loads((tmp_path / "state.json").read_text())
    assert [n["link_up"] for n in saved["nodes"]] == [True, False, True, True]
    port_status(app, dp, port, link_down=False)
    assert live_names(app) == ["lb1", "lb2", "lb3"]
    port_status(app, dp, port, link_down=False, reason="DELETE")
    assert live_names(app) == ["lb1", "lb3"]


def test_link_changes_elsewhere_leave_the_fabric_alone(app):
    edge, other = connect(app, 1), connect(app, 2)
    before = len(edge.sent)
    port_status(app, edge, 7, link_down=True)  # a client's port, not a node's
    port_status(app, other, app.fabric.node("lb1").port, link_down=True)  # another switch
    assert len(edge.sent) == before and live_names(app) == ["lb1", "lb2", "lb3"]


def test_an_operator_removed_node_stays_out_when_its_link_returns(app):
    dp = connect(app, 1)
    app.api_node({"name": "lb1"}, active=False)
    port = app.fabric.node("lb1").port
    port_status(app, dp, port, link_down=True)
    port_status(app, dp, port, link_down=False)
    assert live_names(app) == ["lb2", "lb3"]


class LinkFailsDuringBarrier(AnsweringDatapath):
    """A node's link goes down while the controller waits for a barrier: the switch sends
    the port status before it answers the barrier, as OVS does when the carrier drops."""

    def __init__(self, app, dpid):
        super().__init__(app, dpid)
        self.fail_port: int | None = None

    def send_msg(self, msg):
        if type(msg).__name__ == "OFPBarrierRequest" and self.fail_port is not None:
            port, self.fail_port = self.fail_port, None
            self.sent.append(msg)
            port_status(self.app, self, port, link_down=True)
            self.app.on_reply(SimpleNamespace(msg=SimpleNamespace(xid=msg.xid)))
            return
        super().send_msg(msg)


def group_ports(dp):
    """The output ports of the buckets of the last group the switch was sent."""
    (*_, last) = [m for m in dp.sent if type(m).__name__ == "OFPGroupMod"]
    return sorted(a.port for b in last.buckets for a in b.actions
                  if type(a).__name__ == "OFPActionOutput")


def test_a_link_that_fails_while_a_change_waits_for_its_barrier_stays_withdrawn(app):
    dp = LinkFailsDuringBarrier(app, 1)
    app.on_features(SimpleNamespace(msg=SimpleNamespace(datapath=dp)))
    ports = {n.name: n.port for n in app.fabric.nodes}
    dp.fail_port = ports["lb2"]
    returned = app.api_node({"name": "lb4"}, active=True)
    assert dp.fail_port is None, "the port status was not delivered during the barrier"
    assert live_names(app) == ["lb1", "lb3", "lb4"]
    assert [n["link_up"] for n in returned["nodes"]] == [True, False, True, True]
    assert group_ports(dp) == sorted(ports[n] for n in ("lb1", "lb3", "lb4"))
    app.api_weight({"name": "lb1", "weight": 2})  # a later change keeps lb2 out too
    assert live_names(app) == ["lb1", "lb3", "lb4"]
    assert group_ports(dp) == sorted(ports[n] for n in ("lb1", "lb3", "lb4"))

