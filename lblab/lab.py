"""The lab: build -> start -> wait ready -> yield -> tear down in reverse order.

    with Lab("smoke", topo, controller=ControllerSpec(...)) as lab:
        lab.spawn("b1", [...], name="backend-b1")
        ...

Everything the lab creates is written to its state file (lblab.owned) before or right after it
is created (each host's shell and each link as Mininet makes it), and a guardian process
(lblab.guardian) started with the lab removes it all from that file if the run dies, even by
SIGKILL; `lblab clean` does what the guardian could not. SIGINT and SIGTERM become
`LabInterrupted`, which unwinds the `with` block normally; teardown itself runs with those
signals blocked so a second Ctrl-C cannot cut it short.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lblab import owned as owned_mod
from lblab.capabilities import Capabilities, detect, require
from lblab.errors import LabError, LabInterrupted, UsageError
from lblab.guardian import Guardian
from lblab.proc import ProcRecord, stop_all
from lblab.ready import free_loopback_port, listening_ports, tcp_answers, wait_until

OFFLOADS = ["tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off"]
LAB_LABEL = "lblab-lab"
CONNTRACK_COUNT = "/proc/sys/net/netfilter/nf_conntrack_count"
OFFLOADS_DONE = "lblab-offloads-exit="


def offloads_command(ifnames: list[str]) -> str:
    """One shell line turning offloads off on `ifnames`, then printing its exit status."""
    steps = " && ".join(shlex.join(["ethtool", "-K", name, *OFFLOADS]) for name in ifnames)
    return f"{{ {steps}; }} 2>&1; echo {OFFLOADS_DONE}$?"


def conntrack_headroom(new_max: int, count: int | None = None) -> str | None:
    """Why lowering nf_conntrack_max to `new_max` would hurt the machine, or None.

    The limit is global: every namespace, the machine's own included, stops making entries
    at it. Refused unless the machine's current count (`count`, read from nf_conntrack_count
    when None) is below half of `new_max`. For `Lab.global_sysctl(..., check=...)`.
    """
    if count is None:
        try:
            count = int(Path(CONNTRACK_COUNT).read_text())
        except (OSError, ValueError) as exc:
            return f"cannot read the machine's conntrack count ({CONNTRACK_COUNT}): {exc}"
    if 2 * count < new_max:
        return None
    return (f"the machine tracks {count} connections now, not below half of the new "
            f"nf_conntrack_max {new_max}; wait for them to expire or use a larger table")


@dataclass(frozen=True)
class ControllerSpec:
    """Which os-ken app to run and the JSON config handed to it."""

    app: str = "controllers.fabric_app"
    config: dict[str, Any] = field(default_factory=dict)
    ready_timeout: float = 20.0


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """Turn SIGTERM (and SIGINT) into LabInterrupted for the duration of the block."""

    def handler(signum: int, _frame: Any) -> None:
        raise LabInterrupted(f"interrupted by {signal.Signals(signum).name}; lab torn down")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    mask = {signal.SIGTERM, signal.SIGINT}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, mask)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def check_lab_name(name: str) -> None:
    """Lab names label bridges and name state files: letters, digits, - and _ only."""
    if not name or not name.replace("-", "").replace("_", "").isalnum() or len(name) > 40 \
            or not name.isascii():
        raise UsageError(f"lab name {name!r}: use letters, digits, - and _ (40 at most)")


class Lab:
    """A named Mininet lab whose every resource is recorded and removed on exit."""

    def __init__(self, name: str, topo: Any, *, controller: ControllerSpec | None = None,
                 caps: Capabilities | None = None, log_dir: Path | None = None,
                 link_class: Any = None) -> None:
        check_lab_name(name)
        self.name = name
        self.topo = topo
        self.controller_spec = controller
        self.caps = caps or detect(full=False)
        self.log_dir = log_dir
        self.link_class = link_class
        self.net: Any = None
        self.owned: owned_mod.Owned | None = None
        self.controller_port: int | None = None
        self.controller_api: int | None = None
        self.sysctl_log: list[dict[str, str]] = []
        self.extra_addresses: set[str] = set()
        """Addresses inside the lab that Mininet does not know (VIPs on loopbacks, ...)."""
        self._stack = contextlib.ExitStack()
        self._guardian: Guardian | None = None
        self._node_pids: set[int] = set()
        self._controller: ProcRecord | None = None
        self._logs: list[IO] = []
        self._log_of: dict[int, Path] = {}

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Lab:
        require(self.caps, ("root", "ovs_running"), f"lab {self.name}")
        self.owned = owned_mod.claim(self.name)
        self._stack.enter_context(signals_unwind())
        self._stack.callback(self._release)
        try:
            self._guardian = Guardian.start(self.owned)
            self._preflight()
            if self.controller_spec is not None:
                self._start_controller(self.controller_spec)
            self._build_network()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        with signals_blocked():
            try:
                self._stack.close()
            except LabError as teardown:
                if exc is None:
                    raise
                # Keep the body's exception: it is the cause. Say what teardown found too.
                print(f"lblab: also, during teardown: {teardown}", file=sys.stderr)

    def _preflight(self) -> None:
        present = owned_mod.ovs_bridges()
        clash = sorted(set(self.topo.switches()) & present)
        if clash:
            labelled = subprocess.run(
                ["ovs-vsctl", "--timeout=5", "get", "bridge", clash[0],
                 f"external_ids:{LAB_LABEL}"], capture_output=True, text=True, check=False)
            who = (f"lab {labelled.stdout.strip()}" if labelled.returncode == 0
                   else "something other than lblab")
            raise UsageError(f"bridge {clash[0]} already exists (made by {who}); "
                             "run `lblab clean` or remove it before starting this lab")

    def _release(self) -> None:
        """Last step of teardown: check nothing recorded is left, then drop the state file."""
        assert self.owned is not None
        for log in self._logs:
            log.close()
        keep = (self._guardian.record,) if self._guardian is not None else ()
        left = owned_mod.leftovers(self.owned, keep)
        problems: list[str] | None = None
        try:
            problems = owned_mod.remove(self.owned, keep)
        finally:
            if self._guardian is not None:
                # Done only when all went; else the guardian retries once this run exits.
                self._guardian.finish(done=problems == [])
        if left or problems:
            raise LabError(f"lab {self.name} left {', '.join(left + problems)}; "
                           f"run `lblab clean {self.name}`")

    # -- controller --------------------------------------------------------------------
    def _start_controller(self, spec: ControllerSpec) -> None:
        assert self.owned is not None
        self.controller_port = free_loopback_port()
        self.controller_api = free_loopback_port()
        cfg_path = self.owned.run_dir / "controller.json"
        errors = self.file("controller-errors.log")
        cfg = {**spec.config, "api_port": self.controller_api, "error_log": str(errors),
               "state_file": str(self.file("controller-state.json"))}
        cfg_path.write_text(json.dumps(cfg))
        errors.write_text("")
        self.start_controller()

    def start_controller(self) -> None:
        """Start (or restart) the controller on the lab's loopback ports."""
        assert self.owned is not None and self.controller_spec is not None
        manager = Path(sys.executable).with_name("osken-manager")
        argv = [str(manager), "--ofp-listen-host", "127.0.0.1",
                "--ofp-tcp-listen-port", str(self.controller_port), self.controller_spec.app]
        env = {**os.environ, "LBLAB_CONTROLLER_CONFIG": str(self.file("controller.json")),
               "LBLAB_LAB": self.name}
        log = self._open_log("controller.log")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, cwd=str(Path(__file__).parent.parent))
        self._controller = self._track(proc.pid, "controller")
        wait_until(lambda: proc.poll() is None and tcp_answers("127.0.0.1", self.controller_port)
                   and tcp_answers("127.0.0.1", self.controller_api),
                   timeout=self.controller_spec.ready_timeout,
                   what=f"the controller to listen on 127.0.0.1:{self.controller_port} "
                        f"(log: {log.name})")

    def stop_controller(self) -> None:
        """Kill the controller (the switches keep their flows: fail mode secure)."""
        stop_all([self._controller])

    def wait_connected(self) -> None:
        """Until the controller says every switch is connected and programmed (its /ready:
        a barrier answered by each). Asked of the controller, not of OVSDB: ovs-vswitchd
        writes a controller's `is_connected` lazily, 4-5 s after the connection here."""
        assert self.controller_spec is not None
        wanted = {int(sw.dpid, 16) for sw in self.net.switches}
        wait_until(lambda: wanted <= set(self.controller_api_call("GET", "/state")["datapaths"]),
                   timeout=self.controller_spec.ready_timeout,
                   what="every switch to connect to the controller")
        ready = set(self.controller_api_call("GET", "/ready")["datapaths"])
        if not wanted <= ready:
            raise LabError(f"switches {sorted(wanted - ready)} left the controller while "
                           "it programmed them")

    @property
    def controller_errors(self) -> str:
        """The controller's exception log: integration tests require it to be empty."""
        path = self.file("controller-errors.log")
        return path.read_text() if path.exists() else ""

    # -- network -----------------------------------------------------------------------
    def _build_network(self) -> None:
        from mininet.link import Link, TCLink
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import OVSSwitch, RemoteController

        assert self.owned is not None
        # "critical": Mininet prints tc's harmless htb quantum warnings as "*** Error";
        # real failures still raise.
        setLogLevel("critical")
        datapath = "kernel" if self.caps.datapath == "kernel" else "user"
        fail_mode = "secure" if self.controller_spec else "standalone"

        record = self._record_node
        label = f" external_ids:{LAB_LABEL}={self.name}"

        class LabSwitch(OVSSwitch):
            def __init__(self, name: str, **params: Any) -> None:
                params.setdefault("datapath", datapath)
                params.setdefault("failMode", fail_mode)
                params.setdefault("protocols", "OpenFlow13,OpenFlow15")
                super().__init__(name, **params)

            def bridgeOpts(self) -> str:  # noqa: N802 - Mininet's name
                """Labelled in the ovs-vsctl transaction that creates the bridge."""
                return super().bridgeOpts() + label

        class LabController(_recorded(RemoteController, record)):  # type: ignore[misc]
            def checkListening(self) -> None:
                """The lab waited for the controller already (start_controller); Mininet's
                telnet probe reads the OpenFlow hello as UTF-8 and fails on some xids."""

        link = self.link_class or (TCLink if _topo_shapes(self.topo) else Link)
        self.owned.add_bridges(list(self.topo.switches()))
        self.net = _recording_mininet(Mininet, record, self.owned.add_links)(
            topo=self.topo, switch=LabSwitch, controller=None, link=link, build=False,
            autoSetMacs=False, waitConnected=False)
        self._stack.callback(self._stop_network)
        if self.controller_spec is not None:
            # Mininet gives even a remote controller a root-namespace shell, and its stop()
            # leaves that shell running: it is recorded, and terminated in _stop_network.
            self.net.addController(LabController("c0", ip="127.0.0.1",
                                                 port=self.controller_port))
        self.net.build()
        self.net.start()
        if datapath == "user":
            self._offloads_off()
        if self.controller_spec is not None:
            for sw in self.net.switches:
                for uuid in sw.controllerUUIDs():
                    # Reconnect within a second after a controller restart (default: 8 s).
                    subprocess.run(["ovs-vsctl", "--timeout=10", "set", "controller", uuid,
                                    "max_backoff=1000"], check=True, capture_output=True)
            self.wait_connected()

    def _wait_namespaces_gone(self, links: set[str], stall_s: float = 1.0,
                              timeout: float = 30.0) -> None:
        """Wait while the dead namespaces' links keep vanishing; stop once none has vanished
        for `stall_s`. A namespace with no process left can still be pinned by its orphaned
        TCP sockets (a server killed with connections open, retransmitting its FIN to a
        peer that is gone) for as long as the kernel retries them; its links are then
        deleted one by one, and the namespace goes when its last socket does."""
        progress = {"left": owned_mod.present_links(links), "at": time.monotonic()}

        def settled() -> bool:
            left = owned_mod.present_links(progress["left"])
            if len(left) < len(progress["left"]):
                progress.update(left=left, at=time.monotonic())
            return not left or time.monotonic() - progress["at"] > stall_s

        with contextlib.suppress(LabError):  # what is left is deleted one by one
            wait_until(settled, timeout=timeout, interval=0.01,
                       what="the lab's namespaces to take their links")

    def _offloads_off(self, timeout: float = 30.0) -> None:
        """Offloads off on every host interface (the userspace datapath cannot carry TCP
        otherwise). Each host's own shell runs its ethtools, every host's command is sent
        before any is waited for: they run side by side, and no Python process is forked
        per interface (about 7 ms each: 1.5 s of a 200-host lab). Any failure raises."""
        sent = []
        for host in self.net.hosts:
            names = [intf.name for intf in host.intfList() if intf.name != "lo"]
            if names:
                host.sendCmd(offloads_command(names))
                sent.append(host)
        deadline = time.monotonic() + timeout
        failed = []
        for host in sent:
            out = ""
            while host.waiting and time.monotonic() < deadline:
                out += host.monitor(timeoutms=max(1, (deadline - time.monotonic()) * 1000))
            if host.waiting:
                failed.append(f"{host.name}: no answer in {timeout:g} s")
            elif f"{OFFLOADS_DONE}0\n" not in out.replace("\r", ""):
                failed.append(f"{host.name}: {out.strip()}")
        if failed:
            raise LabError("turning offloads off (ethtool -K IF " + " ".join(OFFLOADS)
                           + ") failed: " + "; ".join(failed))

    def _record_node(self, node: Any) -> None:
        """A node's shell, as soon as Mininet made it (once); a host's namespace goes to the
        guardian too (what runs there is the lab's, recorded or not)."""
        assert self.owned is not None
        if getattr(node, "shell", None) is None or node.pid in self._node_pids:
            return
        try:
            record = ProcRecord.of(node.pid, f"mininet:{node.name}")
        except ProcessLookupError:
            return  # the shell is gone already: nothing of it to remove
        self._node_pids.add(node.pid)
        if node.inNamespace and self._guardian is not None:
            self._guardian.watch_netns(record.pid, record.start)
        self.owned.add_process(record)

    def _stop_network(self) -> None:
        """Stop the network in the order that lets the kernel and OVS do it in bulk. Mininet
        deletes each link through a shell (a veth's deletion waits for an RCU grace period:
        about 25 ms a link) and then waits for ovs-vswitchd to drop each vanished port; a
        namespace that dies takes all its devices, veth peers included, in one batch.

        So: the lab's processes stop (what runs in a namespace keeps it alive), then the host
        shells; the guardian stops any stray left in the namespaces and lets them go; the lab
        waits while the links' root-namespace ends vanish (`_wait_namespaces_gone`), removes
        its bridges in one OVS transaction and whatever links remain over netlink. Mininet's
        own stop is left with the switches' shells. Nothing is raised here: `_release`
        checks for leftovers and removes them."""
        if self.net is None:
            return
        assert self.owned is not None
        guardian = self._guardian
        for controller in self.net.controllers:
            controller.stop()
        stop_all([p for p in reversed(self.owned.processes)  # the node shells stop below
                  if p.pid not in self._node_pids
                  and (guardian is None or p != guardian.record)])
        with_namespace = {intf.name for link in self.net.links
                          for intf in (link.intf1, link.intf2)
                          if not intf.node.inNamespace
                          and (link.intf1.node.inNamespace or link.intf2.node.inNamespace)}
        for host in self.net.hosts:
            host.terminate()
        if guardian is not None:
            guardian.release_namespaces()
            self._wait_namespaces_gone(with_namespace & set(self.owned.links))
        owned_mod.remove_bridges(self.owned.bridges)
        owned_mod.remove_links(self.owned.links)
        self.net.links = []
        self.net.stop()
        for controller in self.net.controllers:
            controller.terminate()

    # -- what experiments use ----------------------------------------------------------
    def host(self, name: str) -> Any:
        try:
            return self.net[name]
        except KeyError:
            raise UsageError(f"lab {self.name} has no node {name!r}") from None

    def file(self, name: str) -> Path:
        """A path in the lab's own folder (removed with the lab)."""
        assert self.owned is not None
        return self.owned.run_dir / name

    def _open_log(self, name: str) -> IO:
        folder = self.log_dir or (self.owned.run_dir if self.owned else Path("."))
        folder.mkdir(parents=True, exist_ok=True)
        log = open(folder / name, "ab")
        self._logs.append(log)
        return log

    def _track(self, pid: int, name: str) -> ProcRecord:
        assert self.owned is not None
        record = ProcRecord.of(pid, name)
        # Stop step first: even if persisting the record fails, the process is stopped.
        self._stack.callback(lambda: stop_all([record]))
        self.owned.add_process(record)
        return record

    def controller_api_call(self, method: str, path: str, body: dict | None = None) -> dict:
        """Call the controller's loopback JSON API; a refusal becomes a LabError."""
        import urllib.error
        import urllib.request

        req = urllib.request.Request(f"http://127.0.0.1:{self.controller_api}{path}",
                                     method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
            raise LabError(f"controller {method} {path}: {detail}") from None

    def run(self, node: str, argv: list[str], *, check: bool = True,
            timeout: float = 30.0, stdin: str | None = None) -> str:
        """Run a short command inside a node's namespace and return its stdout."""
        proc = self.host(node).popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise LabError(f"{node}: {' '.join(argv)} did not finish in {timeout:g} s") from None
        if check and proc.returncode != 0:
            raise LabError(f"{node}: {' '.join(argv)} failed ({proc.returncode}): "
                           f"{err.strip() or out.strip()}")
        return out

    def spawn(self, node: str, argv: list[str], *, name: str,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a long-running process in a node's namespace, in its own process group.

        It is recorded in the state file and stopped (by group) when the lab tears down.
        Its output goes to `<name>.log` in the lab's log folder.
        """
        log = self._open_log(f"{name}.log")
        full_env = {**os.environ, "LBLAB_LAB": self.name, **(env or {})}
        proc = self.host(node).popen(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env)
        self._track(proc.pid, name)
        self._log_of[proc.pid] = Path(log.name)
        return proc

    def stop_process(self, proc: subprocess.Popen) -> None:
        """Stop one spawned process (and its group) now instead of at teardown."""
        stop_all([r for r in self.owned.processes if r.pid == proc.pid], reap=False)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)  # collected by its Popen: returncode is the real one

    def addresses(self) -> set[str]:
        """Every IPv4 address on a lab host's interface, plus those registered as extra."""
        found = {intf.IP() for host in self.net.hosts for intf in host.intfList()
                 if intf.IP()}
        return found | self.extra_addresses

    def on_teardown(self, fn: Callable[[], Any]) -> None:
        """Register an undo step; steps run in reverse order of registration."""
        self._stack.callback(fn)

    def wait_listening(self, node: str, port: int, *, timeout: float = 15.0,
                       proc: subprocess.Popen | None = None) -> None:
        pid = self.host(node).pid

        def ready() -> bool:
            if proc is not None and proc.poll() is not None:
                log = self._log_of.get(proc.pid)
                last = ""
                if log is not None and log.exists():
                    lines = log.read_text(errors="replace").strip().splitlines()
                    last = f": {lines[-1].strip()}" if lines else ""
                raise LabError(f"{node}: process exited ({proc.returncode}) before "
                               f"listening on port {port} (log {log}){last}")
            return port in listening_ports(pid)

        wait_until(ready, timeout=timeout, what=f"{node} to listen on TCP port {port}")

    @contextlib.contextmanager
    def global_sysctl(self, path: str, value: str, *,
                      check: Callable[[], str | None] | None = None) -> Iterator[str]:
        """Change a machine-wide sysctl for the block only (restored on every exit path, by
        the guardian if the run dies, and by `lblab clean`); yields the old value.

        check: called first; a problem it returns (e.g. `conntrack_headroom(new)`) refuses
        the change with a UsageError naming it.
        """
        assert self.owned is not None
        if check is not None:
            problem = check()
            if problem:
                raise UsageError(f"not setting {path} to {value}: {problem}")
        target = Path(path)
        old = target.read_text().strip()
        self.owned.add_sysctl(path, old)
        self.sysctl_log.append({"path": path, "old": old, "new": value})
        try:
            target.write_text(value)
            yield old
        finally:
            target.write_text(old)
            self.owned.forget_sysctl(path)

    def set_global_sysctl(self, path: str, value: str, *,
                          check: Callable[[], str | None] | None = None) -> str:
        """Change a machine-wide sysctl until the lab tears down; returns the old value."""
        return self._stack.enter_context(self.global_sysctl(path, value, check=check))

    @contextlib.contextmanager
    def cgroup(self, path: Path, change: dict[str, str]) -> Iterator[Path]:
        """A cgroup directory made for this lab's processes (a memory limit), recorded before
        it exists so teardown, the guardian after a SIGKILL, and `lblab clean` remove it, and
        named in the result (`change`) as the machine-wide change it is."""
        assert self.owned is not None
        self.owned.add_cgroup(str(path))
        self.sysctl_log.append(change)
        path.mkdir()
        try:
            yield path
        finally:
            problem = owned_mod.remove_cgroup(path)
            if problem is None:
                self.owned.forget_cgroup(str(path))

    @property
    def sysctls_changed(self) -> list[dict[str, str]]:
        """Every global sysctl this lab changed (and restored): for the result."""
        return list(self.sysctl_log)


def _recorded(node_class: type, record_node: Callable[[Any], None]) -> type:
    """`node_class` whose shell is recorded the moment it is started (before Mininet waits
    for its prompt, and whether or not the rest of the node's setup succeeds)."""

    class Recorded(node_class):  # type: ignore[misc, valid-type]
        def startShell(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().startShell(*args, **kwargs)
            finally:
                record_node(self)

    Recorded.__name__ = Recorded.__qualname__ = f"Recorded{node_class.__name__}"
    return Recorded


def _recording_mininet(base: type, record_node: Callable[[Any], None],
                       record_links: Callable[[list[str]], None]) -> type:
    """A Mininet that records each node's shell as it starts (whatever the node's class,
    the topology's own included) and each link's root-namespace interfaces just before they
    are made, so a run killed mid-build leaves nothing unlisted."""
    recording: dict[type, type] = {}
    nodes: dict[type, type] = {}

    def recorded(cls: type) -> type:
        if cls not in nodes:
            nodes[cls] = _recorded(cls, record_node)
        return nodes[cls]

    def recording_link(cls: type) -> type:
        if cls not in recording:
            class RecordingLink(cls):  # type: ignore[misc, valid-type]
                @classmethod
                def makeIntfPair(klass, intfname1: str, intfname2: str, addr1: Any = None,
                                 addr2: Any = None, node1: Any = None, node2: Any = None,
                                 deleteIntfs: bool = True) -> Any:
                    # Interfaces in a host's namespace go with it; record the others.
                    record_links([name for name, node in ((intfname1, node1),
                                                          (intfname2, node2))
                                  if node is None or not node.inNamespace])
                    return super().makeIntfPair(intfname1, intfname2, addr1, addr2, node1,
                                                node2, deleteIntfs)

            recording[cls] = RecordingLink
        return recording[cls]

    class LabNet(base):  # type: ignore[misc, valid-type]
        def addHost(self, name: str, cls: Any = None, **params: Any) -> Any:
            return super().addHost(name, recorded(cls or self.host), **params)

        def addSwitch(self, name: str, cls: Any = None, **params: Any) -> Any:
            return super().addSwitch(name, recorded(cls or self.switch), **params)

        def addController(self, name: Any = "c0", controller: Any = None,
                          **params: Any) -> Any:
            node = super().addController(name, controller, **params)
            record_node(node)  # a controller object made by the caller: record it now
            return node

        def addLink(self, node1: Any, node2: Any, port1: Any = None, port2: Any = None,
                    cls: Any = None, **params: Any) -> Any:
            return super().addLink(node1, node2, port1, port2,
                                   recording_link(cls or self.link), **params)

    return LabNet


def _topo_shapes(topo: Any) -> bool:
    """Whether any link asks for shaping, on the link or on one of its ends (params1/2):
    such a topology needs TCLink, or the shaping would be silently dropped."""
    def shaped(info: dict) -> bool:
        return any(d.get("bw") for d in (info, info.get("params1") or {},
                                         info.get("params2") or {}))

    return any(shaped(topo.linkInfo(a, b)) for a, b in topo.links())
