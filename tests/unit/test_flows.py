"""Flow-mods per policy, table-driven, built and serialised against a fake datapath."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from os_ken.lib.packet import arp, ethernet, packet
from os_ken.ofproto import ofproto_v1_5, ofproto_v1_5_parser

from controllers import flows
from controllers.policies import Fabric, Node

NODES = tuple(Node(f"lb{i}", i + 1, f"00:00:00:00:01:0{i}", bucket_id=i) for i in (1, 2, 3))


class FakeDatapath:
    ofproto = ofproto_v1_5
    ofproto_parser = ofproto_v1_5_parser
    id = 1

    def __init__(self):
        self.sent = []
        self.xid = 0

    def set_xid(self, msg):
        self.xid += 1
        msg.set_xid(self.xid)

    def send_msg(self, msg):
        self.sent.append(msg)


def fabric(policy, fields="5tuple", nodes=NODES):
    return Fabric(1, "10.0.0.100", "02:00:00:00:00:64", nodes=nodes, policy=policy,
                  fields=fields)


def kinds(msgs):
    return [type(m).__name__ for m in msgs]


def serialise(msgs):
    for m in msgs:
        m.serialize()
    return msgs


CASES = [
    # policy, expected message kinds (first), table-0 action
    ("select13", ["OFPGroupMod", "OFPFlowMod", "OFPBarrierRequest"], "OFPActionGroup"),
    ("select15", ["OFPGroupMod", "OFPFlowMod", "OFPBarrierRequest"], "OFPActionGroup"),
    ("modulo_n", ["OFPFlowMod"] * 4 + ["OFPBarrierRequest"], "NXActionMultipath"),
    ("hrw", ["OFPFlowMod"] * 4 + ["OFPBarrierRequest"], "NXActionMultipath"),
]


@pytest.mark.parametrize(("policy", "expected", "action"), CASES, ids=[c[0] for c in CASES])
def test_each_policy_builds_valid_messages(policy, expected, action):
    msgs = serialise(flows.program(FakeDatapath(), None, fabric(policy)))
    assert kinds(msgs) == expected
    vip = [m for m in msgs if type(m).__name__ == "OFPFlowMod" and m.table_id == 0][0]
    assert vip.match["ipv4_dst"] == "10.0.0.100"
    assert type(vip.instructions[0].actions[0]).__name__ == action


def test_select15_carries_stable_bucket_ids_weights_and_the_hash_method():
    group = flows.program(FakeDatapath(), None, fabric("select15", "src_ip"))[0]
    assert [b.bucket_id for b in group.buckets] == [1, 2, 3]
    assert group.command == flows.OFPGC15_ADD_OR_MOD
    prop = group.properties[0]
    raw = struct.pack(f"!{len(prop.data)}I", *prop.data)
    assert raw[4:20].rstrip(b"\0") == b"hash"
    (header,) = struct.unpack("!I", raw[28:32])
    assert header >> 16 == 0x8000 and (header >> 9) & 0x7F == 11 and not header & 0x100
    assert raw[32:36] == b"\xff" * 4
    wire = prop.serialize()
    assert len(wire) % 8 == 0 and struct.unpack_from("!H", wire, 2)[0] == 12 + 28 + 8


@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")
@pytest.mark.parametrize("fields", ["5tuple", "src_ip"])
def test_ovs_decodes_the_select15_group_as_intended(fields):
    msg = flows.program(FakeDatapath(), None, fabric("select15", fields))[0]
    msg.set_xid(1)
    msg.serialize()
    out = subprocess.run(["ovs-ofctl", "ofp-print", bytes(msg.buf).hex()], capture_output=True,
                         text=True, check=True)
    assert "decode error" not in out.stdout + out.stderr, out.stdout + out.stderr
    wanted = {"5tuple": "fields(ip_src,ip_dst,nw_proto,tcp_src,tcp_dst,udp_src,udp_dst)",
              "src_ip": "fields=ip_src"}[fields]
    assert f"selection_method=hash,{wanted}" in out.stdout


def test_select13_uses_positions_as_bucket_ids():
    nodes = (NODES[0], NODES[2])
    group = flows.program(FakeDatapath(), None, fabric("select13", nodes=nodes))[0]
    assert [b.bucket_id for b in group.buckets] == [0, 1] and not group.properties


def test_maglev_installs_one_slot_flow_per_table_entry():
    f = fabric("maglev")
    msgs = flows.program(FakeDatapath(), None, f)
    slots = [m for m in msgs if type(m).__name__ == "OFPFlowMod" and m.table_id == 1]
    assert len(slots) == f.table_size
    vip = [m for m in msgs if type(m).__name__ == "OFPFlowMod" and m.table_id == 0][0]
    mp = vip.instructions[0].actions[0]
    assert mp.max_link == f.table_size - 1 and mp.algorithm == 0


def test_shrinking_deletes_surplus_slots_after_switching_table_0():
    before = fabric("modulo_n")
    after = before.with_node("lb3", active=False)
    msgs = flows.program(FakeDatapath(), before, after)
    order = [(m.table_id, m.command) for m in msgs if type(m).__name__ == "OFPFlowMod"]
    assert order == [(1, 0), (1, 0), (0, 0), (1, ofproto_v1_5.OFPFC_DELETE_STRICT)]


def test_leaving_a_multipath_policy_for_a_group_deletes_its_slots():
    msgs = flows.program(FakeDatapath(), fabric("hrw"), fabric("select15"))
    deletes = [m for m in msgs if getattr(m, "command", None) == ofproto_v1_5.OFPFC_DELETE_STRICT]
    assert len(deletes) == 3


def test_no_live_node_drops_vip_traffic():
    empty = tuple(Node(n.name, n.port, n.mac, active=False, bucket_id=n.bucket_id) for n in NODES)
    msgs = serialise(flows.program(FakeDatapath(), None, fabric("hrw", nodes=empty)))
    vip = [m for m in msgs if type(m).__name__ == "OFPFlowMod" and m.table_id == 0][0]
    assert vip.instructions == []


def test_arp_for_the_vip_is_answered_with_the_virtual_mac():
    req = packet.Packet()
    req.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src="00:00:00:00:00:0a",
                                       ethertype=0x0806))
    req.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac="00:00:00:00:00:0a",
                             src_ip="10.0.1.1", dst_mac="00:00:00:00:00:00", dst_ip="10.0.0.100"))
    req.serialize()
    f = fabric("hrw")
    assert flows.is_vip_arp_request(packet.Packet(req.data), f)
    reply = packet.Packet(flows.arp_reply(packet.Packet(req.data), f)).get_protocol(arp.arp)
    assert (reply.opcode, reply.src_mac, reply.dst_ip) == (arp.ARP_REPLY, f.vmac, "10.0.1.1")
