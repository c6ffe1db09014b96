"""Lowering nf_conntrack_max is refused while the machine's table is not well below it."""

from __future__ import annotations

import pytest

from lblab import owned
from lblab.capabilities import Capabilities
from lblab.errors import UsageError
from lblab.lab import Lab, conntrack_headroom


@pytest.mark.parametrize(("count", "new_max", "ok"), [
    (0, 256, True), (127, 256, True), (128, 256, False), (4000, 256, False),
    (100_000, 262_144, True), (131_072, 262_144, False),
])
def test_conntrack_headroom_needs_the_count_below_half_the_new_max(count, new_max, ok):
    problem = conntrack_headroom(new_max, count=count)
    if ok:
        assert problem is None
    else:
        assert f"tracks {count} connections" in problem
        assert f"nf_conntrack_max {new_max}" in problem


def test_conntrack_headroom_reads_the_machines_count():
    """Without a count it reads nf_conntrack_count (a failure to read is a problem too)."""
    assert conntrack_headroom(10**9) is None


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setenv("LBLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LBLAB_RUNTIME", str(tmp_path / "run"))
    caps = Capabilities(root=False, ovs_running=False, ovs_datapath_types=(),
                        ovs_kernel_module=False, netem=False, htb=False, cgroup_v2=False,
                        conntrack_max_writable=False, conntrack_max=None)
    lab = Lab("unit", None, caps=caps)
    lab.owned = owned.claim("unit")
    yield lab
    lab.owned.path.unlink()


def test_a_refused_check_changes_nothing(lab, tmp_path):
    sysctl = tmp_path / "nf_conntrack_max"
    sysctl.write_text("262144\n")
    with pytest.raises(UsageError, match=r"not setting .* to 256: the machine tracks 200 "):
        with lab.global_sysctl(str(sysctl), "256",
                               check=lambda: conntrack_headroom(256, count=200)):
            pass
    assert sysctl.read_text() == "262144\n"
    assert owned.Owned.load(lab.owned.path).sysctls == {} and lab.sysctls_changed == []


def test_a_passed_check_changes_and_restores(lab, tmp_path):
    sysctl = tmp_path / "nf_conntrack_max"
    sysctl.write_text("262144\n")
    with lab.global_sysctl(str(sysctl), "256", check=lambda: conntrack_headroom(256, count=3)):
        assert sysctl.read_text() == "256"
        assert owned.Owned.load(lab.owned.path).sysctls == {str(sysctl): "262144"}
    assert sysctl.read_text() == "262144"
