"""stream-pinning's parameters and its variants' settings."""

from __future__ import annotations

from dataclasses import dataclass

from lblab.errors import UsageError
from lblab.params import param

PINNED, UNARY, MAX_AGE, NO_JITTER = "pinned", "unary", "max-age", "max-age-no-jitter"
LOSS, LOSS_BACKOFF = "backend-loss", "backend-loss-backoff"
VARIANTS = (PINNED, UNARY, MAX_AGE, NO_JITTER, LOSS, LOSS_BACKOFF)
SCALE_OUT, KILL = "scale-out", "kill"
"""The timeline's events: the new servers set ready at t1; a backend killed at t_loss."""
GRPC_JITTER = 0.1
"""gRPC core multiplies MAX_CONNECTION_AGE by U(1 - 0.1, 1 + 0.1) per connection."""
BREAK_WINDOW_S = 1.0
"""backend-loss: streams that end within this long after the kill are the ones it broke."""


@dataclass(frozen=True)
class Setting:
    """What a variant is: the client's kind and lifetime, the servers' age, the fault."""

    kind: str = "grpc"
    lifetime_s: float = 0.0
    age_mode: str = "none"
    jitter: float = 0.0
    reconnect: str = "immediate"
    fault: str = SCALE_OUT
    ws: bool = False
    """WebSocket streams beside the gRPC ones."""


@dataclass(frozen=True)
class Params:
    backends: int = param(3, "N: backends in service from the start", min=1, max=8)
    new_backends: int = param(2, "M: backends added at t1 (servers waiting in maintenance)",
                              min=1, max=8)
    streams: int = param(60, "K: long-lived streams (each its own connection)", min=4,
                         max=400)
    ws_streams: int = param(30, "WebSocket streams beside the gRPC ones (pinned, max-age, "
                            "max-age-no-jitter)", min=0, max=400)
    open_rate: float = param(1000.0, "streams opened per second at the start", min=10,
                             max=5000)
    t1: float = param(10.0, "the scale-out: new servers set ready (s)", min=0.5, max=600)
    lifetime_s: float = param(20.0, "tau: pinned streams' mean lifetime (exponential, the "
                              "client ends them)", min=0.5, max=3600)
    pinned_s: float = param(60.0, "length of the pinned variant (s)", min=2, max=3600)
    rate: float = param(100.0, "unary calls per second", min=1, max=1000)
    unary_s: float = param(20.0, "length of the unary variant (s)", min=2, max=3600)
    age_s: float = param(20.0, "A: the servers' maximum connection age (s)", min=0.5,
                         max=3600)
    grace_s: float = param(2.0, "G: its grace period (s)", min=0, max=600)
    peak_window_s: float = param(0.25, "w: the window reconnect peaks are counted in (s)",
                                 min=0.05, max=10)
    t_loss: float = param(5.0, "backend-loss: when b1 is killed (s)", min=0.5, max=600)
    backoff_s: float = param(5.0, "backend-loss-backoff: reconnect delay drawn from "
                             "U(0, backoff_s)", min=0.1, max=600)
    sample_s: float = param(1.0, "interval of the backends' and HAProxy's stream counts (s)",
                            min=0.1, max=10)
    variants: tuple[str, ...] = param(VARIANTS, "variants to run", choices=VARIANTS)

    def __post_init__(self) -> None:
        if problem := self.problem():
            raise UsageError(f"stream-pinning: {problem}")

    def problem(self) -> str:
        if self.pinned_s <= self.t1 + self.lifetime_s:
            return (f"pinned_s must exceed t1 + lifetime_s = {self.t1 + self.lifetime_s:g} s "
                    "(the curve is read at t1 + tau)")
        if self.unary_s <= self.t1 + 1:
            return f"unary_s must exceed t1 + 1 = {self.t1 + 1:g} s"
        if self.t1 >= (1 - GRPC_JITTER) * self.age_s + self.grace_s:
            return ("t1 must come before the first streams age out: t1 < 0.9 age_s + grace_s "
                    f"= {(1 - GRPC_JITTER) * self.age_s + self.grace_s:g} s")
        opening = (self.streams + self.ws_streams) / self.open_rate
        if opening > self.peak_window_s / 2:
            return ("open_rate too low: all streams must open within half the peak window "
                    f"((streams + ws_streams) / open_rate = {opening:g} s, peak_window_s = "
                    f"{self.peak_window_s:g} s)")
        if 2 * GRPC_JITTER * self.age_s < 4 * self.peak_window_s:
            return ("age_s too short for the peak window: the jitter spreads reconnects over "
                    f"0.2 age_s = {0.2 * self.age_s:g} s, at least 4 peak windows are needed")
        if self.streams < self.backends:
            return "streams must be at least backends"
        return ""

    def setting(self, variant: str) -> Setting:
        return {
            PINNED: Setting(lifetime_s=self.lifetime_s, ws=True),
            UNARY: Setting(kind="unary"),
            MAX_AGE: Setting(age_mode="grpc", jitter=GRPC_JITTER, ws=True),
            NO_JITTER: Setting(age_mode="app", jitter=0.0, ws=True),
            LOSS: Setting(fault=KILL),
            LOSS_BACKOFF: Setting(fault=KILL, reconnect="backoff"),
        }[variant]

    def seconds(self, variant: str) -> float:
        """How long the variant's client runs."""
        lost = self.t_loss + BREAK_WINDOW_S + 2
        return {
            PINNED: self.pinned_s,
            UNARY: self.unary_s,
            MAX_AGE: balanced_by(self, GRPC_JITTER) + 2 * self.sample_s + 1,
            NO_JITTER: balanced_by(self, 0.0) + 2 * self.sample_s + 1,
            LOSS: lost,
            LOSS_BACKOFF: lost + self.backoff_s,
        }[variant]

    @property
    def new_share(self) -> float:
        """M / (N + M): the new backends' share once balanced."""
        return self.new_backends / (self.backends + self.new_backends)


def balanced_by(p: Params, jitter: float) -> float:
    """When max-age has replaced every stream opened before the scale-out: t1 + 1.1 A + G
    with gRPC's jitter (a stream opened just before t1 lives at most 1.1 A + G), t1 + A + G
    without."""
    return p.t1 + (1 + jitter) * p.age_s + p.grace_s


def quick() -> Params:
    """Times scaled down so six variants fit in about a minute and a half with bring-up."""
    return Params(t1=2.0, lifetime_s=4.0, pinned_s=12.0, unary_s=5.0, age_s=6.0, grace_s=1.0,
                  t_loss=2.0, backoff_s=2.0, sample_s=0.5)
