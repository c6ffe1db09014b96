"""header-normalization in quick mode, end to end, on real OVS with real HAProxy and the four
parsers: result.json complete, the matrix drawn, and what a user checks: strict HAProxy lets
no desync through, lenient HAProxy forwards more and relaxes exactly the framing cases the
bytes predict (`Transfer-Encoding : chunked`, forwarded as an unknown field), h1-case-adjust
restores the case strict HAProxy lowers. One claim may honestly not hold on this HAProxy
build (strict-rfc: Debian's 2.6.12 forwards NUL bytes and bare-LF chunk sizes, one Host of
two identical, a missing or invalid Host): such a claim must then name its exceptions, each
a case of the corpus; the run exits 1."""

from __future__ import annotations

import json

import pytest

from experiments.header_normalization import corpus
from lblab.runner import run

pytestmark = pytest.mark.integration
NAME = "header-normalization"


def test_header_normalization_quick(tmp_path):
    code = run([NAME], [], quick=True, seed=1, out=tmp_path, repeat=1, lab="it-hdr")
    folder = tmp_path / NAME
    result = json.loads((folder / "result.json").read_text())
    assert not result["measurement_problems"], result["measurement_problems"]
    assert (folder / "matrix.png").exists() and (folder / "matrix.csv").exists()
    assert result["duration_s"] < 60
    names = {c.name for c in corpus.load()}
    by_id = {c["id"]: c for c in result["claims"]}
    for cid in ("strict-desync-h11", "strict-desync-httptools", "strict-desync-httpserver",
                "strict-desync-aiohttp", "lenient-framing", "lenient-superset",
                "strict-lowercases", "case-adjust-restores"):
        assert by_id[cid]["holds"], by_id[cid]
    missed = [c for c in result["claims"] if not (c["holds"] or c["skipped"])]
    for c in missed:
        named = c["note"].split(": ")[-1].split(", ")
        assert c["measured"] == len(named) and set(named) <= names, c
    assert code == (1 if missed else 0)
    assert "predicted from the bytes: te-space-colon; relaxed: te-space-colon" in \
        by_id["lenient-framing"]["note"]
    v = result["variants"]
    assert len(v["lenient"]["proxy_forwarded"]) > len(v["strict"]["proxy_forwarded"])
    assert v["case-adjust"]["legacy_broken_share"] < v["strict"]["legacy_broken_share"]
    assert v["direct"]["httpserver_accepts_must_reject"]  # a lenient parser, seen alone
