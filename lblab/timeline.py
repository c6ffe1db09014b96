"""One clock per variant: t = 0 is the instant the client's schedule really started.

The client announces that instant in a start file (lblab.workloads.client, `start_file`);
the timeline waits for it, then fires each scheduled fault at its time on that clock and
records when it really fired and finished. Samples (lblab.sampler) carry wall-clock times
that `t_of` puts on the same clock. Nothing here assumes how long a client takes to boot:
the boot time is measured and recorded.

A fault that fires later than its stated slack, or raises, is a problem of the measurement,
not of the system under test: `close()` returns the problems and the driver reports the
variant's measurement as invalid instead of analysing the wrong interval.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Event:
    what: str
    at: float
    """Planned time on the variant's clock (s)."""
    fn: Callable[[], Any]
    slack_s: float
    """How late it may fire before the interval it bounds is no longer the one analysed."""
    fired: float | None = None
    done: float | None = None
    error: str = ""

    def to_json(self) -> dict:
        return {"what": self.what, "at": self.at, "fired": _r(self.fired),
                "done": _r(self.done),
                "drift_s": _r(None if self.fired is None else self.fired - self.at),
                "slack_s": self.slack_s, "error": self.error}


@dataclass
class Timeline:
    start_file: Path
    start_timeout_s: float = 30.0
    """How long the client may take to start its schedule once launched."""
    events: list[Event] = field(default_factory=list)
    origin: float | None = None
    """Wall-clock time of t = 0, once the client has announced it."""
    launched: float | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _problems: list[str] = field(default_factory=list)

    def at(self, t: float, what: str, fn: Callable[[], Any], slack_s: float = 0.5) -> None:
        """Run fn at t seconds on the variant's clock (in the timeline's thread)."""
        if self._thread is not None:
            raise RuntimeError("schedule every event before the client starts")
        self.events.append(Event(what, t, fn, slack_s))

    def start(self) -> None:
        """Called as the client is launched: wait for its start file, then fire events."""
        self.start_file.unlink(missing_ok=True)
        self.launched = time.time()
        self._thread = threading.Thread(target=self._loop, name="timeline", daemon=True)
        self._thread.start()

    def announce(self, wall: float) -> None:
        """Say that t = 0 was the wall-clock instant `wall`: for a workload that is not the
        open-loop client (a connection prober measures its own ready instant). Atomic."""
        tmp = self.start_file.with_name(f".{self.start_file.name}.tmp")
        tmp.write_text(repr(wall))
        tmp.replace(self.start_file)

    def t_of(self, wall: float) -> float:
        """A wall-clock time on this clock (before the client started: negative)."""
        if self.origin is None:
            raise RuntimeError("the client never announced its start")
        return wall - self.origin

    def _loop(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while self.origin is None:
            try:
                self.origin = float(self.start_file.read_text())
            except (FileNotFoundError, ValueError):  # not there yet, or not written whole
                if self._stop.wait(0.005) or time.monotonic() > deadline:
                    if self.events:
                        self._problems.append(
                            f"the client did not start its schedule within "
                            f"{self.start_timeout_s:g} s; no fault was applied")
                    return
        for event in sorted(self.events, key=lambda e: e.at):
            delay = self.origin + event.at - time.time()
            if delay > 0 and self._stop.wait(delay):
                self._problems.append(f"{event.what}: the run ended before its time")
                return
            event.fired = time.time() - self.origin
            try:
                event.fn()
            except Exception:  # noqa: BLE001 - a failed fault invalidates the variant
                event.error = traceback.format_exc(limit=3).strip().splitlines()[-1]
            event.done = time.time() - self.origin

    def close(self) -> dict:
        """Stop waiting, join, and return the timeline as a raw document."""
        if self._thread is not None:
            # Let pending events fire if the client is still within its schedule; a client
            # that ended early leaves them unfired, which is a problem to report.
            remaining = [e for e in self.events if e.fired is None]
            if remaining and self.origin is not None:
                wait = max(0.0, self.origin + max(e.at for e in remaining) - time.time())
                self._thread.join(timeout=wait + 5)
            self._stop.set()
            self._thread.join(timeout=30)
        problems = list(self._problems)
        for e in self.events:
            if e.error:
                problems.append(f"{e.what}: failed: {e.error}")
            elif e.fired is not None and e.fired - e.at > e.slack_s:
                problems.append(f"{e.what}: fired {e.fired - e.at:.2f} s late "
                                f"(slack {e.slack_s:g} s); its window is not the one planned")
            elif e.fired is None and not any(e.what in p for p in problems):
                problems.append(f"{e.what}: never fired")
        return {
            "origin_wall": self.origin,
            "client_boot_s": _r(None if self.origin is None or self.launched is None
                                else self.origin - self.launched),
            "events": [e.to_json() for e in self.events],
            "problems": problems,
        }


def event_time(doc: dict, what: str) -> float | None:
    """When the event `what` of a timeline document really fired (s on its clock)."""
    for e in doc.get("events", []):
        if e["what"] == what:
            return e["fired"]
    return None


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
