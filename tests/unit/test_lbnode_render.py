"""Rendered nftables rulesets and haproxy.cfg against golden files; config errors as a table."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from lblab.errors import UsageError
from lbnodes import l4, l7
from tests.conftest import golden

B = tuple(l4.Backend(f"b{i}", f"10.1.1.{i}", 8080) for i in (1, 2, 3))
S = tuple(l7.Server(f"b{i}", f"10.1.1.{i}", 8080) for i in (1, 2, 3))

L4_CASES = {
    "l4_numgen.nft": l4.L4Config("l4", "10.0.0.1", 80, B, "l4-eth1"),
    "l4_jhash_weighted.nft": l4.L4Config(
        "l4", "10.0.0.1", 80, (l4.Backend("b1", "10.1.1.1", 8080, weight=2), *B[1:]),
        "l4-eth1", dispatch="jhash", hash_fields="saddr", hash_seed=7),
    "l4_synproxy_cap.nft": l4.L4Config("l4", "10.0.0.1", 80, B, "l4-eth1", synproxy=True,
                                       flow_cap=1000),
    "l4_router_synproxy.nft": l4.L4Config("r1", "10.0.0.1", 80, B, "r1-eth1", mode="router",
                                          synproxy=True, flow_cap=500),
    "l4_router_flow_sets.nft": l4.L4Config("r1", "10.0.0.1", 80, B, "r1-eth1", mode="router",
                                           tcp_loose=False, flow_sets=True),
    "l4_forward.nft": l4.L4Config("r1", "10.0.0.1", 80, B, "r1-eth1", mode="forward"),
    "l4_dsr.nft": l4.L4Config(
        "lb1", "10.0.0.100", 80,
        tuple(l4.Backend(f"b{i}", f"10.1.1.{i}", 80, mac=f"00:00:00:00:02:0{i}")
              for i in (1, 2, 3)),
        "lb1-eth1", mode="dsr", dispatch="jhash", hash_fields="5tuple",
        front_ifname="lb1-eth0", back_mac="00:00:00:00:01:81"),
}


@pytest.mark.parametrize("name", L4_CASES)
def test_l4_ruleset_matches_golden(name):
    golden(name, l4.render(L4_CASES[name]))


def test_weights_become_map_slots():
    slots = l4.slot_map((l4.Backend("a", "10.1.1.1", weight=3), l4.Backend("b", "10.1.1.2")))
    assert [s.name for s in slots] == ["a", "a", "a", "b"]


@pytest.mark.skipif(shutil.which("nft") is None or shutil.which("unshare") is None,
                    reason="needs nft")
@pytest.mark.parametrize("name", L4_CASES)
def test_l4_ruleset_parses_in_nft(name, tmp_path):
    path = tmp_path / name
    path.write_text(l4.render(L4_CASES[name]))
    cfg = L4_CASES[name]
    setup = (f"ip link add {cfg.front_ifname} type veth peer name {cfg.backend_ifname} && "
             if cfg.mode == "dsr" else "")
    res = subprocess.run(["unshare", "-n", "sh", "-c", f"{setup}nft -c -f {path}"],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0 and "Operation not permitted" in res.stderr:
        pytest.skip("unshare needs root")
    assert res.returncode == 0, res.stderr


L7_CASES = {
    "haproxy_roundrobin.cfg": l7.L7Config("l7", "10.0.0.2", 80, S),
    "haproxy_bounded_checks.cfg": l7.L7Config(
        "l7", "10.0.0.2", 80, S, balance="source", hash_type="consistent",
        hash_balance_factor=125, check=True, retries=2, retry_on="conn-failure 503",
        redispatch=True),
    "haproxy_cookie.cfg": l7.L7Config("l7", "10.0.0.2", 80, S, cookie=True),
    "haproxy_zone_surge.cfg": l7.L7Config(
        "l7", "10.0.0.2", 80, (l7.Server("b1", "10.1.1.1", 8080, maxconn=4),
                               l7.Server("b2", "10.1.2.1", 8080, backup=True, maxconn=4)),
        check=True, timeout_queue_ms=100, timeout_check_ms=250, allbackups=True, max_queued=8),
    "haproxy_l4_check_agent.cfg": l7.L7Config(
        "l7", "10.0.0.2", 80, S, check=True, check_http=False, agent_port=8081,
        agent_inter_ms=250),
    "haproxy_passive_observe.cfg": l7.L7Config(
        "l7", "10.0.0.2", 80, S, check=True, check_path="/healthz", check_fastinter_ms=100,
        check_downinter_ms=250, observe_layer7=True, error_limit=5, on_error="mark-down"),
    "haproxy_tcp_logged_promex.cfg": l7.L7Config(
        "l7t", "10.0.0.2", 80, S, mode="tcp", log_socket="/run/lblab/l7t-log.sock",
        prometheus_socket="/run/lblab/l7t-prom.sock"),
    "haproxy_http_log_format.cfg": l7.L7Config(
        "l7h", "10.0.0.3", 80, S, log_socket="/run/lblab/l7h-log.sock",
        log_format="%Ts.%ms %ST %Tq %Tw %Tc %Tr %Ta %B %ts %ci:%cp"),
    "haproxy_lenient_case_adjust.cfg": l7.L7Config(
        "l7", "10.0.0.2", 80, S, keepalive_to_servers=False, accept_invalid_http_request=True,
        restrict_req_hdr_names="delete", h1_case_adjust=("X-Legacy-Token", "SOAPAction"),
        set_request_headers=(("X-Lblab-Client", "%[src]:%[src_port]"),)),
}


@pytest.mark.parametrize("name", L7_CASES)
def test_haproxy_cfg_matches_golden(name):
    golden(name, l7.render(L7_CASES[name], "/run/lblab/l7.sock"))


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")
@pytest.mark.parametrize("name", L7_CASES)
def test_haproxy_accepts_cfg(name, tmp_path):
    path = tmp_path / name
    path.write_text(l7.render(L7_CASES[name], str(tmp_path / "s.sock")))
    res = subprocess.run(["haproxy", "-c", "-q", "-f", str(path)], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stderr + res.stdout


BAD_L4 = [
    (dict(vip="10.0.0.999"), "vip '10.0.0.999' is not an IPv4 address"),
    (dict(backends=()), "needs at least one backend"),
    (dict(dispatch="random"), "dispatch 'random' is not one of numgen, jhash"),
    (dict(hash_fields="mac"), "hash_fields 'mac' is not one of"),
    (dict(backends=(l4.Backend("b", "10.1.1.1", weight=0),)), "backend b: weight must be >= 1"),
    (dict(ct_timeouts={"tcp; rm": 1}), "is not a sysctl name"),
    (dict(mode="ipvs"), "mode 'ipvs' is not one of"),
    (dict(mode="dsr", dispatch="numgen"), "dsr needs dispatch=jhash"),
    (dict(mode="dsr", dispatch="jhash"), "dsr needs front_ifname and back_mac"),
    (dict(flow_sets=True), "flow_sets needs mode=router"),
]


@pytest.mark.parametrize(("change", "message"), BAD_L4, ids=[m for _, m in BAD_L4])
def test_bad_l4_config_is_rejected(change, message):
    args = dict(name="l4", vip="10.0.0.1", port=80, backends=B, backend_ifname="l4-eth1")
    with pytest.raises(UsageError, match="L4 node l4: .*" + message[:20].replace("(", r"\(")):
        l4.L4Config(**{**args, **change})


BAD_L7 = [
    (dict(servers=()), "needs at least one server"),
    (dict(balance="magic"), "balance 'magic' is not one of"),
    (dict(hash_type="ring"), "hash_type 'ring' is not consistent or map-based"),
    (dict(hash_balance_factor=125), "hash_balance_factor needs hash_type consistent"),
    (dict(servers=(S[0], S[0])), "server names must be unique"),
    (dict(max_queued=2), "max_queued needs maxconn on every server"),
    (dict(agent_port=8081), "agent_port, observe_layer7 and check_http=False need check"),
    (dict(check=True, observe_layer7=True, on_error="reboot"), "on_error 'reboot' is not one"),
    (dict(check=True, error_limit=5), "error_limit and on_error need observe_layer7"),
    (dict(check=True, agent_port=70000), "agent_port 70000 outside 0..65535"),
    (dict(mode="udp"), "mode 'udp' is not one of http, tcp"),
    (dict(mode="tcp", cookie=True, balance="uri"), "mode tcp cannot use cookie, balance uri"),
    (dict(log_format="%ST"), "log_format needs log_socket"),
    (dict(log_socket="/s", log_format='"%ST"'), "log_format must not contain double quotes"),
    (dict(restrict_req_hdr_names="drop"), "restrict_req_hdr_names 'drop' is not preserve"),
    (dict(mode="tcp", accept_invalid_http_request=True), "h1_case_adjust and set_request_h"),
    (dict(h1_case_adjust=("X Token",)), "header 'X Token': no spaces"),
    (dict(set_request_headers=(("X-A", 'a"b'),)), "header 'X-A': no spaces"),
]


@pytest.mark.parametrize(("change", "message"), BAD_L7, ids=[m for _, m in BAD_L7])
def test_bad_l7_config_is_rejected(change, message):
    args = dict(name="l7", bind_ip="10.0.0.2", port=80, servers=S)
    with pytest.raises(UsageError) as err:
        l7.L7Config(**{**args, **change})
    assert message in str(err.value)
