"""The SYN flood's bounds: hping3 ignores `-c` with `--flood`, so the count is the flooder
namespace's own nftables quota, and the flood stops at whichever bound comes first."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from lblab.workloads.floods import FLOOD_TABLE, SYN_BYTES, flood_bound_ruleset, syn_flood


def test_the_count_bound_is_a_byte_quota_of_that_many_syns():
    rules = flood_bound_ruleset("10.1.1.1", 80, 1000)
    assert f"quota over {1000 * SYN_BYTES} bytes" in rules
    assert rules.count("ip daddr 10.1.1.1 tcp dport 80") == 2
    assert f"delete table ip {FLOOD_TABLE}" in rules


class CountingLab:
    name = "fake"

    def __init__(self, tmp: Path, sent: int) -> None:
        self.tmp, self.sent, self.commands, self.stopped = tmp, sent, [], []

    def addresses(self) -> set[str]:
        return {"10.1.1.1"}

    def file(self, name: str) -> Path:
        return self.tmp / name

    def run(self, node, argv, *, check=True):
        self.commands.append(argv)
        return json.dumps({"nftables": [{"counter": {"name": "sent", "packets": self.sent}}]})

    def spawn(self, node, argv, *, name):
        lab = self

        class Proc:
            def poll(self):
                return 0 if lab.stopped else None

            def wait(self, timeout):
                raise subprocess.TimeoutExpired(argv, timeout)

        return Proc()

    def stop_process(self, proc) -> None:
        self.stopped.append(proc)


def test_a_flood_stops_once_its_count_has_left_the_namespace(tmp_path):
    lab = CountingLab(tmp_path, sent=500)
    result = syn_flood(lab, "c1", "10.1.1.1", 80, count=500, seconds=30)
    assert result.stopped_by_count and not result.stopped_by_bound
    assert result.sent == 500 and len(lab.stopped) == 1
    assert lab.commands[-1] == ["nft", "delete", "table", "ip", FLOOD_TABLE]
