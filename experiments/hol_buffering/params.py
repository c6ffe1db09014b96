"""hol-and-buffering's parameters, its variants, and the constants every part shares."""

from __future__ import annotations

from dataclasses import dataclass

from lblab.params import param

LOSS_VARIANTS = ("loss-h2", "loss-h1")
SLOW_VARIANTS = ("slow-h2", "slow-h1")
BUFFER_VARIANTS = ("buffer-haproxy", "buffer-tier", "buffer-max-body", "buffer-conc-limit")
VARIANTS = LOSS_VARIANTS + SLOW_VARIANTS + BUFFER_VARIANTS
SAMPLE_S = 0.05
"""Memory sampling period (the cgroup's usage, HAProxy's RSS)."""
LOSS_ON = "loss-on"


@dataclass(frozen=True)
class Params:
    variants: tuple[str, ...] = param(VARIANTS, "variants to run", choices=VARIANTS)
    # -- head-of-line blocking under loss --------------------------------------------------
    streams: int = param(16, "S: concurrent streams per round (h2: on one connection; h1: "
                         "one connection each)", min=2, max=100)
    rounds: int = param(60, "rounds of S concurrent GETs", min=5, max=2000)
    response_bytes: int = param(4096, "each stream's response body (bytes)", min=0,
                                max=1 << 20)
    loss_pct: float = param(2.0, "p: share of the client's incoming packets dropped "
                            "(nftables numgen random, in %)", min=0.01, max=20)
    sweep_pcts: tuple[float, ...] = param((0.5, 5.0), "more loss rates for the stalled-share "
                                          "curve: each adds loss-h2@P and loss-h1@P", min=0.01,
                                          max=20)
    rto_only: bool = param(True, "the proxy's namespace recovers every loss by the "
                           "retransmission timeout (no SACK, so no RACK; no tail loss probe; "
                           "dupthresh 127): a loss is then a stall of >= the 200 ms minimum "
                           "RTO, visible at the lab's sub-millisecond RTT")
    gap_ms: float = param(20.0, "pause between rounds", min=0, max=1000)
    # -- one slow stream beside its siblings ----------------------------------------------
    slow_upload_mib: float = param(64.0, "the slow stream's upload (MiB): more than the "
                                   "upstream's socket buffers can absorb", min=1, max=1024)
    slow_pause_ms: float = param(2000.0, "how long the slow stream's upstream reads nothing",
                                 min=200, max=30_000)
    siblings: int = param(12, "sibling GETs sent while the upstream pauses", min=1, max=200)
    sibling_every_s: float = param(0.1, "spacing of the siblings", min=0.01, max=5)
    sibling_start_s: float = param(0.5, "when the first sibling leaves (after the slow "
                                   "stream has filled the upstream's buffers)", min=0.05,
                                   max=30)
    # -- buffering of large bodies ---------------------------------------------------------
    uploads: int = param(5, "C: concurrent uploads (a ramp: one every `every_s`)", min=2,
                         max=32)
    every_s: float = param(0.25, "spacing of the ramp's uploads", min=0.02, max=5)
    body_mib: float = param(8.0, "B: each upload's body (MiB)", min=0.5, max=256)
    headroom_bodies: float = param(2.5, "the buffering tier's memory limit, above its "
                                   "resident memory at rest, in bodies (H / B; not an "
                                   "integer, so the predicted kill is one upload)", min=0.2,
                                   max=30)
    sink_mib_s: float = param(4.0, "how fast the upstream reads each body (MiB/s): bodies "
                              "stay in flight B / this long", min=0.1, max=1000)
    bufsize: int = param(16384, "HAProxy tune.bufsize (its default)", min=1024,
                         max=1 << 20)

    def __post_init__(self) -> None:
        from lblab.errors import UsageError

        if not self.variants:
            raise UsageError("variants: name at least one")
        if float(self.headroom_bodies).is_integer():
            raise UsageError("headroom_bodies: must not be an integer (at H = k B the kill "
                             "falls between two uploads)")
        if self.uploads <= self.headroom_bodies:
            raise UsageError(f"uploads: must exceed headroom_bodies ({self.headroom_bodies:g})"
                             " or the buffering tier is never killed")
        last = self.sibling_start_s + (self.siblings - 1) * self.sibling_every_s
        if last >= self.slow_pause_ms / 1000:
            raise UsageError(f"siblings: the last one leaves at {last:g} s, after the "
                             f"upstream's pause ({self.slow_pause_ms / 1000:g} s) ends")
        if self.hold_s <= self.uploads * self.every_s:
            raise UsageError(f"sink_mib_s: each body must stay in flight longer than the "
                             f"ramp ({self.uploads * self.every_s:g} s); it stays "
                             f"{self.hold_s:g} s")

    @property
    def body_bytes(self) -> int:
        return int(self.body_mib * (1 << 20))

    @property
    def hold_s(self) -> float:
        return self.body_mib / self.sink_mib_s

    @property
    def headroom_bytes(self) -> int:
        return int(self.headroom_bodies * self.body_bytes)

    @property
    def conc_limit(self) -> int:
        """The mitigation's limit: the most uploads whose bodies fit the headroom."""
        return int(self.headroom_bodies)

    @property
    def max_body(self) -> int:
        """The mitigation's maximum body: half of B, so every upload is refused."""
        return self.body_bytes // 2


def loss_variants(p: Params) -> list[tuple[str, str, float]]:
    """(variant, h2 or h1, loss %) of every loss variant a run with these parameters has:
    `loss-h2` / `loss-h1` at loss_pct, and `loss-h2@P` / `loss-h1@P` for each P of the sweep."""
    out = []
    for name in LOSS_VARIANTS:
        if name in p.variants:
            mode = name.removeprefix("loss-")
            out.append((name, mode, p.loss_pct))
            out += [(f"{name}@{q:g}", mode, q) for q in p.sweep_pcts if q != p.loss_pct]
    return out


def quick() -> Params:
    return Params(rounds=40, sweep_pcts=(), uploads=4, slow_pause_ms=1500, siblings=8,
                  sibling_start_s=0.4)
