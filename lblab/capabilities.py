"""What this machine offers, detected rather than assumed.

A Vagrant VM may have the openvswitch module and netem; this machine has neither. Probes that
need a kernel feature run inside `unshare -n` (a network namespace that dies with the probe),
so detection leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lblab.errors import MissingCapability

# tool -> (argv that prints a version, regex that extracts it)
TOOLS: dict[str, tuple[list[str], str]] = {
    "ovs-vsctl": (["ovs-vsctl", "--version"], r"(\d+\.\d+\.\d+)"),
    "mn": (["mn", "--version"], r"(\d+\.\d+\.\d+)"),
    "haproxy": (["haproxy", "-v"], r"version (\S+)"),
    "nft": (["nft", "--version"], r"v(\d+\.\d+\.\d+)"),
    "conntrack": (["conntrack", "--version"], r"v(\d+\.\d+\.\d+)"),
    "iperf3": (["iperf3", "--version"], r"iperf (\d+\.\d+)"),
    "hping3": (["hping3", "--version"], r"version (\S+)"),
    "redis-server": (["redis-server", "--version"], r"v=(\S+)"),
    "wrk": (["wrk", "-v"], r"wrk (\S+)"),
    "ethtool": (["ethtool", "--version"], r"version (\S+)"),
    "tc": (["tc", "-V"], r"(\S+)$"),
}

CONNTRACK_MAX = "/proc/sys/net/netfilter/nf_conntrack_max"


def _run(argv: list[str], timeout: float = 5.0) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def tool_version(name: str) -> str | None:
    argv, pattern = TOOLS[name]
    if shutil.which(argv[0]) is None:
        return None
    res = _run(argv)
    if res is None:
        return None
    text = (res.stdout + res.stderr).strip()
    match = re.search(pattern, text.splitlines()[0] if text else "")
    return match.group(1) if match else (text.splitlines()[0] if text else "unknown")


def _qdisc_works(kind: list[str]) -> bool:
    if shutil.which("unshare") is None or shutil.which("tc") is None:
        return False
    res = _run(["unshare", "-n", "tc", "qdisc", "add", "dev", "lo", "root", *kind])
    return res is not None and res.returncode == 0


def _conntrack_max_writable() -> bool:
    """Only the initial namespace may change it: elsewhere the kernel makes the file 0444."""
    try:
        return bool(os.stat(CONNTRACK_MAX).st_mode & 0o200) and os.access(CONNTRACK_MAX, os.W_OK)
    except OSError:
        return False


@dataclass(frozen=True)
class Capabilities:
    root: bool
    ovs_running: bool
    ovs_datapath_types: tuple[str, ...]
    ovs_kernel_module: bool
    netem: bool
    htb: bool
    cgroup_v2: bool
    conntrack_max_writable: bool
    conntrack_max: int | None
    tools: dict[str, str | None] = field(default_factory=dict)

    @property
    def datapath(self) -> str:
        """'kernel' where the openvswitch module serves the system datapath, else 'user'."""
        if self.ovs_kernel_module and "system" in self.ovs_datapath_types:
            return "kernel"
        return "user"

    def has(self, need: str) -> bool:
        if need in TOOLS:
            return self.tools.get(need) is not None
        return bool(getattr(self, need))

    def to_json(self) -> dict:
        data = asdict(self)
        data["datapath"] = self.datapath
        return data


def detect(full: bool = True) -> Capabilities:
    """Probe the machine. `full=False` skips tool versions and qdisc probes (about 0.4 s):
    what a lab needs to start is only root, OVS and its datapath."""
    ovs = _run(["ovs-vsctl", "--timeout=3", "get", "Open_vSwitch", ".", "datapath_types"])
    ovs_ok = ovs is not None and ovs.returncode == 0
    types = tuple(re.findall(r"\w+", ovs.stdout)) if ovs_ok else ()
    module = Path("/sys/module/openvswitch").exists()
    if not module and shutil.which("modprobe"):
        probe = _run(["modprobe", "-n", "-q", "openvswitch"])
        module = probe is not None and probe.returncode == 0
    root = os.geteuid() == 0
    cmax = None
    try:
        cmax = int(Path(CONNTRACK_MAX).read_text())
    except (OSError, ValueError):
        pass
    return Capabilities(
        root=root,
        ovs_running=ovs_ok,
        ovs_datapath_types=types,
        ovs_kernel_module=module,
        netem=full and root and _qdisc_works(["netem", "delay", "1ms"]),
        htb=full and root and _qdisc_works(["htb"]),
        cgroup_v2=Path("/sys/fs/cgroup/cgroup.controllers").exists(),
        conntrack_max_writable=root and _conntrack_max_writable(),
        conntrack_max=cmax,
        tools={name: tool_version(name) for name in TOOLS} if full else {},
    )


FIXES = {
    "root": "run lblab as root (it builds namespaces and bridges)",
    "ovs_running": "start Open vSwitch: /usr/share/openvswitch/scripts/ovs-ctl start "
                   "--system-id=random (or run scripts/provision.sh)",
    "netem": "this kernel has no sch_netem; pick a variant that does not need delay or loss",
    "htb": "this kernel has no sch_htb; link shaping is unavailable",
    "conntrack_max_writable": "nf_conntrack_max is writable only by root in the initial "
                              "network namespace",
}


def require(caps: Capabilities, needs: tuple[str, ...], who: str) -> None:
    """Raise MissingCapability naming the first missing need and how to get it."""
    for need in needs:
        if not caps.has(need):
            fix = FIXES.get(need, f"install {need} (scripts/provision.sh installs it)")
            raise MissingCapability(f"{who} needs {need}: {fix}")
