"""Client retry policies as pure logic, driven by the client with explicit `now` values.

A policy answers two questions: may a request leave now (a circuit breaker may say no), and
after a failed attempt, how long to wait before the next one (None: give up). Budgets and
token buckets also learn about every first attempt and every success, because that is what
they ration against. Nothing here sleeps or touches the network, so every policy is tested
with a fake clock.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

RETRYABLE = {"timeout", "connect", "reset", "5xx"}


class Policy:
    """No retries: the base every policy refines."""

    kind = "none"

    def allow(self, now: float) -> bool:
        return True

    def on_attempt(self, attempt: int, now: float) -> None:
        """An attempt leaves (attempt 0 is the request's first)."""

    def on_outcome(self, ok: bool, now: float) -> None:
        """An attempt finished: ok, or failed with a retryable outcome."""

    def next_delay(self, attempt: int, outcome: str, now: float) -> float | None:
        return None


@dataclass
class Naive(Policy):
    """Up to `retries` immediate retries on any retryable outcome."""

    retries: int = 1
    kind = "naive"

    def next_delay(self, attempt: int, outcome: str, now: float) -> float | None:
        return 0.0 if outcome in RETRYABLE and attempt < self.retries else None


@dataclass
class Backoff(Policy):
    """Exponential backoff with full jitter: delay ~ U(0, min(cap, base * 2**attempt))."""

    retries: int = 3
    base_s: float = 0.05
    cap_s: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    kind = "backoff"

    def next_delay(self, attempt: int, outcome: str, now: float) -> float | None:
        if outcome not in RETRYABLE or attempt >= self.retries:
            return None
        return self.rng.uniform(0, min(self.cap_s, self.base_s * 2 ** attempt))


@dataclass
class Budget(Policy):
    """Retries limited to `ratio` of the requests of the last `window_s`, plus `min_per_s`.

    Finagle's RetryBudget shape (a ratio of recent requests plus a floor of retries per second);
    Envoy's is the same idea expressed over active requests.
    """

    ratio: float = 0.2
    min_per_s: float = 0.0
    retries: int = 3
    window_s: float = 10.0
    kind = "budget"
    _requests: deque = field(default_factory=deque)
    _retries: deque = field(default_factory=deque)

    def _trim(self, now: float) -> None:
        for q in (self._requests, self._retries):
            while q and q[0] < now - self.window_s:
                q.popleft()

    def on_attempt(self, attempt: int, now: float) -> None:
        (self._requests if attempt == 0 else self._retries).append(now)

    def next_delay(self, attempt: int, outcome: str, now: float) -> float | None:
        if outcome not in RETRYABLE or attempt >= self.retries:
            return None
        self._trim(now)
        allowed = self.ratio * len(self._requests) + self.min_per_s * self.window_s
        return 0.0 if len(self._retries) + 1 <= allowed else None


@dataclass
class TokenBucket(Policy):
    """gRPC's retry throttling: failures cost 1 token, successes refund `token_ratio`;
    retries are allowed only while tokens > max_tokens / 2."""

    max_tokens: float = 10.0
    token_ratio: float = 0.1
    retries: int = 3
    kind = "token_bucket"
    tokens: float = -1.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.max_tokens

    def on_outcome(self, ok: bool, now: float) -> None:
        self.tokens = (min(self.max_tokens, self.tokens + self.token_ratio) if ok
                       else max(0.0, self.tokens - 1))

    def next_delay(self, attempt: int, outcome: str, now: float) -> float | None:
        if outcome not in RETRYABLE or attempt >= self.retries:
            return None
        return 0.0 if self.tokens > self.max_tokens / 2 else None


@dataclass
class Breaker(Policy):
    """A circuit breaker: opens after `threshold` consecutive failures, lets one probe through
    after `cooldown_s` (half-open), closes on the probe's success, reopens on its failure."""

    threshold: int = 5
    cooldown_s: float = 2.0
    inner: Policy = field(default_factory=Policy)
    kind = "breaker"
    state: str = "closed"
    failures: int = 0
    opened_at: float = 0.0
    transitions: list = field(default_factory=list)

    def _move(self, state: str, now: float) -> None:
        self.state = state
        self.transitions.append((now, state, self.failures))

    def allow(self, now: float) -> bool:
        if self.state == "open" and now - self.opened_at >= self.cooldown_s:
            self._move("half_open", now)
            return True
        return self.state == "closed"

    def on_attempt(self, attempt: int, now: float) -> None:
        self.inner.on_attempt(attempt, now)

    def on_outcome(self, ok: bool, now: float) -> None:
        self.inner.on_outcome(ok, now)
        if ok:
            if self.state != "closed":
                self._move("closed", now)
            self.failures = 0
            return
        self.failures += 1
        if self.state == "half_open" or (self.state == "closed"
                                         and self.failures >= self.threshold):
            self.opened_at = now
            self._move("open", now)

    def next_delay(self, attempt: int, outcome: str, now: float) -> float | None:
        if self.state != "closed":
            return None
        return self.inner.next_delay(attempt, outcome, now)


KINDS: dict[str, type[Policy]] = {
    "none": Policy, "naive": Naive, "backoff": Backoff, "budget": Budget,
    "token_bucket": TokenBucket, "breaker": Breaker,
}


def make_policy(spec: dict[str, Any], seed: int = 0) -> Policy:
    """Build a policy from its JSON spec, e.g. {"kind": "naive", "retries": 2}."""
    spec = dict(spec)
    kind = spec.pop("kind", "none")
    if kind not in KINDS:
        raise ValueError(f"unknown retry policy {kind!r}; known: {', '.join(KINDS)}")
    if kind == "breaker" and "inner" in spec:
        spec["inner"] = make_policy(spec["inner"], seed)
    if kind == "backoff":
        spec["rng"] = random.Random(seed)
    return KINDS[kind](**spec)
