"""tls-termination's parameters, its variants, and the names of their timeline events."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lblab.params import param

VARIANTS = ("expiry", "rotate-runtime", "bad-rotation", "rotate-reload", "restart", "sni",
            "sni-strict", "ocsp", "mtls-ca", "mtls-bundle")
NAMES = ("a.lab", "b.lab")
"""The two server names on the one address (crt-list order: a.lab is the default)."""
BIN_S = 0.25
"""Width of the outcome timeline's bins."""
POLL_S = 0.05
"""lblab.ready's polling interval: a restart's measured gap overstates the real one by at
most two polls (listening socket, stats socket)."""
OCSP_HAPROXY_MARGIN_S = 300
"""HAProxy 2.6 stops stapling a response at its nextUpdate minus this (ssl_ocsp.c)."""

# Timeline events (what) per variant.
INSTALL, COMMIT_EXPIRED = "install-expiring", "commit-expired"
ROTATE, BAD, RELOAD, RESTART = "rotate", "bad-rotation", "reload", "restart"
ROTATE_NO_OCSP, SET_OCSP = "rotate-without-ocsp", "set-ocsp-response"
CA_ROTATE = "backend-ca-rotation"


@dataclass(frozen=True)
class Params:
    rate: float = param(40.0, "new TLS handshakes per second (open loop, constant)", min=1,
                        max=300)
    run_s: float = param(6.0, "seconds of handshakes per variant (expiry: see lifetime_s)",
                         min=2, max=120)
    event_at: float = param(2.0, "when the rotation, reload, restart or bad commit happens "
                            "(s on the variant's clock)", min=0.5, max=60)
    install_at: float = param(0.5, "expiry: when the short-lived certificate is installed",
                              min=0.2, max=30)
    lifetime_s: int = param(4, "expiry: the short-lived certificate's validity from its "
                            "installation, whole seconds (X.509's resolution)", min=1,
                            max=60)
    timeout_s: float = param(1.0, "a handshake's (and its request's) timeout", min=0.1, max=10)
    ocsp_fresh_s: int = param(3, "ocsp: the first response stops being stapled this long "
                              "after the run starts (nextUpdate = then + 300 s)", min=1,
                              max=60)
    check_inter_ms: int = param(200, "mtls: HAProxy's health-check interval", min=50,
                                max=5000)
    check_fall: int = param(2, "mtls: failed checks that mark a server DOWN", min=1, max=10)
    backends: int = param(2, "backends (mtls: TLS servers requiring a client certificate)",
                          min=1, max=4)
    variants: tuple[str, ...] = param(VARIANTS, "variants to run", choices=VARIANTS)

    def __post_init__(self) -> None:
        problem = self.validate()
        if problem:
            from lblab.errors import UsageError

            raise UsageError(f"tls-termination: {problem}")

    def validate(self) -> str | None:
        if self.event_at + 1.0 > self.run_s:
            return f"event_at must leave at least 1 s of run_s ({self.run_s:g}) after it"
        if not self.variants:
            return "variants: name at least one"
        if self.timeout_s * self.rate > 256:
            return (f"timeout_s x rate = {self.timeout_s * self.rate:g}: that many "
                    "handshakes can be in flight, one client thread each; keep it <= 256")
        return None

    @property
    def expiry_s(self) -> float:
        """The expiry variant runs until 2 s past the expired certificate's commit."""
        return self.install_at + self.lifetime_s + 3.0 + 1.0

    @property
    def commit_expired_at(self) -> float:
        return self.install_at + self.lifetime_s + 2.0

    @property
    def ocsp_s(self) -> float:
        """ocsp: stale at ocsp_fresh_s, restored 1 s later, rotated without .ocsp 1 s after
        that, 1 s to see it."""
        return self.ocsp_fresh_s + 4.0

    @property
    def client_threads(self) -> int:
        """Enough threads for every handshake that can be in flight (each may wait its
        timeout), so a stalled server shows as timeouts, never as a late schedule."""
        return math.ceil(self.rate * self.timeout_s) + 16

    def seconds(self, variant: str) -> float:
        if variant == "expiry":
            return self.expiry_s
        if variant == "ocsp":
            return self.ocsp_s
        return self.run_s


def quick() -> Params:
    """About 60 s in all: 4 s variants, a 2 s certificate lifetime, 2 s fresh staple."""
    return Params(rate=40.0, run_s=4.0, event_at=1.5, lifetime_s=2, ocsp_fresh_s=2)
