"""OpenFlow messages for the fabric, as pure functions of (previous, next) fabric state.

`program(dp, previous, fabric)` returns the messages that move the edge switch from one state
to the next, ordered so that no packet meets a gap: a multipath policy's new table-1 slots are
written before table 0 switches to them, and surplus slots are deleted after. Group policies
use OFPGC15_ADD_OR_MOD, so a restarted controller re-sends the same state without deleting
anything (deleting a group also deletes the flows that use it). `dp` only needs `ofproto` and
`ofproto_parser`, so every message is built and serialised in tests without a switch.
"""

from __future__ import annotations

import struct
from typing import Any

from os_ken.lib.packet import arp, ethernet, packet
from os_ken.ofproto import ether, nicira_ext, ofproto_v1_5_parser

from controllers.policies import Fabric, Node

VIP_PRIORITY = 100
TABLE_SLOTS = 1
COOKIE = 0x1B1AB
OFPGC15_ADD_OR_MOD = 0x8000
NTR_VENDOR_ID = 0x0000154D
NTRT_SELECTION_METHOD = 1

# enum nx_hash_fields (OVS include/openflow/nicira-ext.h); os-ken names only the first two.
NX_HASH_FIELDS = {"5tuple": 3, "symmetric": 3, "src_ip": 4}  # SYMMETRIC_L3L4_UDP, NW_SRC
NX_ALGORITHMS = {"modulo_n": nicira_ext.NX_MP_ALG_MODULO_N, "maglev": nicira_ext.NX_MP_ALG_MODULO_N,
                 "hash_threshold": nicira_ext.NX_MP_ALG_HASH_THRESHOLD,
                 "hrw": nicira_ext.NX_MP_ALG_HRW}

# OXM basic-class fields (OpenFlow 1.5 spec, table 12): (field number, value length).
OXM = {"ip_proto": (10, 1), "ipv4_src": (11, 4), "ipv4_dst": (12, 4), "tcp_src": (13, 2),
       "tcp_dst": (14, 2), "udp_src": (15, 2), "udp_dst": (16, 2)}
SELECT_FIELDS = {"5tuple": ("ipv4_src", "ipv4_dst", "ip_proto", "tcp_src", "tcp_dst",
                            "udp_src", "udp_dst"),
                 "src_ip": ("ipv4_src",)}


class SelectionMethodProperty(ofproto_v1_5_parser.OFPGroupPropExperimenter):
    """An experimenter property whose length field excludes its trailing padding, as OVS
    requires (os-ken's own serialiser counts the padding in)."""

    def __init__(self, unpadded: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unpadded = unpadded

    def serialize(self) -> bytes:
        buf = bytearray(super().serialize())
        struct.pack_into("!H", buf, 2, self.unpadded)
        return bytes(buf)


def selection_method_property(fields: str) -> SelectionMethodProperty:
    """OVS's Netronome extension: selection_method=hash over `fields`, as a group property.

    Layout (OVS openflow/netronome-ext.h): pad(4), method name (16, NUL-padded), method param
    (8), then each field as an OXM header (no mask bit) followed by an all-ones value, which
    OVS reads as the field's mask; the property is padded to a multiple of 8 bytes, and its
    length field excludes that padding.
    """
    body = b"\0" * 4 + b"hash".ljust(16, b"\0") + struct.pack("!Q", 0)
    for name in SELECT_FIELDS[fields]:
        number, length = OXM[name]
        body += struct.pack("!I", (0x8000 << 16) | (number << 9) | length) + b"\xff" * length
    header = 12  # type, length, experimenter, exp_type
    unpadded = header + len(body)
    body += b"\0" * ((-unpadded) % 8)
    words = list(struct.unpack(f"!{len(body) // 4}I", body))
    return SelectionMethodProperty(unpadded, type_=0xFFFF, experimenter=NTR_VENDOR_ID,
                                   exp_type=NTRT_SELECTION_METHOD, data=words)


def _to_node(parser: Any, node: Node) -> list[Any]:
    return [parser.OFPActionSetField(eth_dst=node.mac), parser.OFPActionOutput(node.port)]


def _vip_match(parser: Any, fabric: Fabric) -> Any:
    address, mask = fabric.destination
    dst = address if mask == "255.255.255.255" else (address, mask)
    return parser.OFPMatch(eth_type=ether.ETH_TYPE_IP, eth_dst=fabric.vmac, ipv4_dst=dst)


def _flow(dp: Any, table: int, priority: int, match: Any, actions: list[Any],
          goto: int | None = None) -> Any:
    parser, ofp = dp.ofproto_parser, dp.ofproto
    inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)] if actions else []
    if goto is not None:
        inst.append(parser.OFPInstructionGotoTable(goto))
    return parser.OFPFlowMod(dp, cookie=COOKIE, table_id=table, priority=priority, match=match,
                             instructions=inst)


def _delete(dp: Any, table: int, match: Any) -> Any:
    parser, ofp = dp.ofproto_parser, dp.ofproto
    return parser.OFPFlowMod(dp, table_id=table, command=ofp.OFPFC_DELETE_STRICT,
                             priority=VIP_PRIORITY, out_port=ofp.OFPP_ANY,
                             out_group=ofp.OFPG_ANY, match=match)


def group_mod(dp: Any, fabric: Fabric) -> Any:
    parser, ofp = dp.ofproto_parser, dp.ofproto
    live = fabric.live
    buckets = []
    for position, node in enumerate(live):
        bucket_id = position if fabric.policy == "select13" else node.bucket_id
        buckets.append(parser.OFPBucket(
            bucket_id=bucket_id, actions=_to_node(parser, node),
            properties=[parser.OFPGroupBucketPropWeight(type_=ofp.OFPGBPT_WEIGHT,
                                                        weight=node.weight)]))
    props = ([selection_method_property(fabric.fields)]
             if fabric.policy == "select15" else [])
    return parser.OFPGroupMod(dp, command=OFPGC15_ADD_OR_MOD, type_=ofp.OFPGT_SELECT,
                              group_id=fabric.group_id, buckets=buckets, properties=props)


def multipath_action(parser: Any, fabric: Fabric, links: int) -> Any:
    return parser.NXActionMultipath(
        fields=NX_HASH_FIELDS[fabric.fields], basis=0, algorithm=NX_ALGORITHMS[fabric.policy],
        max_link=max(0, links - 1), arg=0, ofs_nbits=nicira_ext.ofs_nbits(0, 15), dst="reg0")


def _slot_count(fabric: Fabric | None) -> int:
    if fabric is None or fabric.policy not in NX_ALGORITHMS:
        return 0
    return len(fabric.slots())


def program(dp: Any, previous: Fabric | None, fabric: Fabric) -> list[Any]:
    """Messages that take the edge switch from `previous` (None: unknown) to `fabric`."""
    parser, ofp = dp.ofproto_parser, dp.ofproto
    match = _vip_match(parser, fabric)
    msgs: list[Any] = []
    old_slots = _slot_count(previous) if previous is not None else 0
    if fabric.policy in NX_ALGORITHMS:
        slots = fabric.slots()
        for i, node in enumerate(slots):
            msgs.append(_flow(dp, TABLE_SLOTS, VIP_PRIORITY, parser.OFPMatch(reg0=i),
                              _to_node(parser, node)))
        if slots:
            msgs.append(_flow(dp, 0, VIP_PRIORITY, match,
                              [multipath_action(parser, fabric, len(slots))], goto=TABLE_SLOTS))
        else:
            msgs.append(_flow(dp, 0, VIP_PRIORITY, match, []))  # no live node: drop
        for i in range(len(slots), old_slots):
            msgs.append(_delete(dp, TABLE_SLOTS, parser.OFPMatch(reg0=i)))
        if previous is not None and previous.policy not in NX_ALGORITHMS:
            msgs.append(parser.OFPGroupMod(dp, command=ofp.OFPGC_DELETE,
                                           group_id=fabric.group_id))
    else:
        msgs.append(group_mod(dp, fabric))
        msgs.append(_flow(dp, 0, VIP_PRIORITY, match,
                          [parser.OFPActionGroup(fabric.group_id)]))
        for i in range(old_slots):
            msgs.append(_delete(dp, TABLE_SLOTS, parser.OFPMatch(reg0=i)))
    msgs.append(parser.OFPBarrierRequest(dp))
    return msgs


def is_vip_arp_request(pkt: packet.Packet, fabric: Fabric) -> bool:
    req = pkt.get_protocol(arp.arp)
    return req is not None and req.opcode == arp.ARP_REQUEST and req.dst_ip == fabric.vip


def arp_reply(pkt: packet.Packet, fabric: Fabric) -> bytes:
    """The controller answers ARP for the anycast VIP with the fabric's virtual MAC."""
    req = pkt.get_protocol(arp.arp)
    reply = packet.Packet()
    reply.add_protocol(ethernet.ethernet(dst=req.src_mac, src=fabric.vmac,
                                         ethertype=ether.ETH_TYPE_ARP))
    reply.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=fabric.vmac, src_ip=fabric.vip,
                               dst_mac=req.src_mac, dst_ip=req.src_ip))
    reply.serialize()
    return bytes(reply.data)
