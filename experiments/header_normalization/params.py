"""header-normalization's parameters and its variants' proxy settings."""

from __future__ import annotations

from dataclasses import dataclass

from lblab.errors import UsageError
from lblab.params import param
from lblab.workloads.parsers import KINDS

from . import corpus

VARIANTS = ("direct", "strict", "lenient", "case-adjust", "restrict-delete", "restrict-reject")
"""direct: each backend alone; the rest: HAProxy in front of each backend, configured as:"""
QUICK_VARIANTS = ("direct", "strict", "lenient", "case-adjust")


@dataclass(frozen=True)
class Params:
    idle_s: float = param(1.0, "the raw client stops reading after this long without a byte",
                          min=0.1, max=10)
    max_s: float = param(5.0, "the raw client's bound on one connection", min=0.5, max=60)
    corpus: str = param("", "a folder of extra cases (NAME.case, or NAME.txt + NAME.bin) run "
                        "with the built-in corpus")
    backends: tuple[str, ...] = param(KINDS, "the parsers behind the proxy", choices=KINDS)
    variants: tuple[str, ...] = param(VARIANTS, "variants to run", choices=VARIANTS)

    def __post_init__(self) -> None:
        if self.max_s < self.idle_s:
            raise UsageError("header-normalization: max_s must be at least idle_s")
        if not self.backends or len(set(self.backends)) != len(self.backends):
            raise UsageError("header-normalization: backends must name each parser once")
        if not self.variants:
            raise UsageError("header-normalization: variants must name at least one")
        try:
            corpus.load(self.corpus)
        except corpus.CorpusError as exc:
            raise UsageError(f"header-normalization: corpus={self.corpus}: {exc}") from None


def quick() -> Params:
    """The four core variants with a shorter read timeout (the corpus is the same)."""
    return Params(idle_s=0.5, max_s=3.0, variants=QUICK_VARIANTS)


def case_names(cases: list[corpus.Case]) -> tuple[str, ...]:
    """The header names whose case legacy cases rely on (what h1-case-adjust restores)."""
    return tuple(dict.fromkeys(c.legacy_header for c in cases if c.legacy == "case"))


def proxy_setting(variant: str, cases: list[corpus.Case]) -> dict | None:
    """The L7Config options of a variant (None: no proxy)."""
    return {
        "direct": None,
        "strict": {},
        "lenient": {"accept_invalid_http_request": True},
        "case-adjust": {"h1_case_adjust": case_names(cases)},
        "restrict-delete": {"restrict_req_hdr_names": "delete"},
        "restrict-reject": {"restrict_req_hdr_names": "reject"},
    }[variant]
