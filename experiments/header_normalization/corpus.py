"""The corpus: one case per file, loaded and validated.

Two formats, both a small block of `key: value` lines (description, rfc, verdict, group,
optional marker, legacy, legacy_header) and the request's exact bytes:

  NAME.case   the block, a line `---`, then the bytes written with escapes: newlines in the
              file are ignored, `\\r \\n \\t \\v \\f \\0 \\xHH \\\\` are the bytes they name
              (so every CR and LF of the request is visible)
  NAME.txt    the block alone, beside NAME.bin holding the bytes verbatim

`verdict` is what RFC 9112 / 9110 require of a recipient: `reject` (MUST or SHOULD answer
400/501 and not forward it), `normalise` (reject, or repair before use / forwarding:
forwarding it unchanged violates), `accept` (valid, or a robustness leniency the RFC allows).
`marker` names the target of a second request carried in the bytes: whoever reads it as a
request of its own has framed the first one its own way. `legacy` marks the
legacy-but-harmless requests (case, bare-lf, obs-fold); `legacy_header` is the header name
whose exact case a case-sensitive backend relies on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

VERDICTS = ("reject", "normalise", "accept")
LEGACY = ("", "case", "bare-lf", "obs-fold")
FIELDS = ("description", "rfc", "verdict", "group", "marker", "legacy", "legacy_header")
REQUIRED = ("description", "rfc", "verdict", "group")
BUILTIN = Path(__file__).parent / "corpus"
_ESCAPE = re.compile(rb"\\(x[0-9A-Fa-f]{2}|[rntvf0\\])")
_NAMED = {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"v": b"\v", b"f": b"\f", b"0": b"\0",
          b"\\": b"\\"}
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


class CorpusError(ValueError):
    """A case file that does not parse; the message names the file and the reason."""


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    rfc: str
    verdict: str
    group: str
    data: bytes
    marker: str = ""
    legacy: str = ""
    legacy_header: str = ""
    source: str = ""
    """The file it came from (the built-in corpus or a --set corpus folder)."""

    def to_json(self) -> dict:
        return {"name": self.name, "description": self.description, "rfc": self.rfc,
                "verdict": self.verdict, "group": self.group, "marker": self.marker,
                "legacy": self.legacy, "legacy_header": self.legacy_header,
                "source": self.source, "bytes": len(self.data)}


def unescape(text: bytes) -> bytes:
    return _ESCAPE.sub(lambda m: (bytes([int(m.group(1)[1:], 16)]) if m.group(1)[:1] == b"x"
                                  else _NAMED[m.group(1)]), text)


def _header(path: Path, text: str) -> dict[str, str]:
    meta: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or key not in FIELDS:
            raise CorpusError(f"{path}:{n}: expected one of {', '.join(FIELDS)} as "
                              f"'key: value', got {line.strip()[:60]!r}")
        if key in meta:
            raise CorpusError(f"{path}:{n}: {key} given twice")
        meta[key] = value.strip()
    return meta


def parse_case(path: Path) -> Case:
    """One case from NAME.case or NAME.txt (+ NAME.bin)."""
    name = path.stem
    if not _NAME.fullmatch(name):
        raise CorpusError(f"{path}: a case name is lower-case letters, digits and '-'")
    if path.suffix == ".case":
        raw = path.read_bytes()
        head, sep, body = raw.partition(b"\n---\n")
        if not sep:
            raise CorpusError(f"{path}: no line '---' between the header block and the bytes")
        meta = _header(path, head.decode("utf-8"))
        data = unescape(b"".join(body.split(b"\n")))
    elif path.suffix == ".txt":
        meta = _header(path, path.read_text("utf-8"))
        bin_path = path.with_suffix(".bin")
        if not bin_path.exists():
            raise CorpusError(f"{path}: no {bin_path.name} beside it holding the bytes")
        data = bin_path.read_bytes()
    else:
        raise CorpusError(f"{path}: a case is NAME.case or NAME.txt + NAME.bin")
    missing = [k for k in REQUIRED if not meta.get(k)]
    if missing:
        raise CorpusError(f"{path}: missing {', '.join(missing)}")
    if meta["verdict"] not in VERDICTS:
        raise CorpusError(f"{path}: verdict {meta['verdict']!r} is not one of "
                          f"{', '.join(VERDICTS)}")
    if meta.get("legacy", "") not in LEGACY:
        raise CorpusError(f"{path}: legacy {meta['legacy']!r} is not one of "
                          f"{', '.join(x for x in LEGACY if x)}")
    if meta.get("legacy") == "case" and not meta.get("legacy_header"):
        raise CorpusError(f"{path}: legacy: case needs legacy_header (the name whose case "
                          "matters)")
    if not data:
        raise CorpusError(f"{path}: no request bytes")
    return Case(name, meta["description"], meta["rfc"], meta["verdict"], meta["group"], data,
                meta.get("marker", ""), meta.get("legacy", ""), meta.get("legacy_header", ""),
                str(path))


def load_dir(folder: Path) -> list[Case]:
    """Every case in a folder, by name; a folder without cases is an error."""
    if not folder.is_dir():
        raise CorpusError(f"{folder}: not a folder")
    paths = sorted([*folder.glob("*.case"), *folder.glob("*.txt")])
    if not paths:
        raise CorpusError(f"{folder}: no .case or .txt files")
    return [parse_case(p) for p in paths]


def load(extra: str = "") -> list[Case]:
    """The built-in corpus, plus the cases of `extra` (a folder) when given."""
    cases = load_dir(BUILTIN) + (load_dir(Path(extra)) if extra else [])
    seen: dict[str, str] = {}
    for c in cases:
        if c.name in seen:
            raise CorpusError(f"case {c.name} is in both {seen[c.name]} and {c.source}")
        seen[c.name] = c.source
    return cases


# -- the bytes as sent, read by the plainest rule -------------------------------------------
def as_sent(data: bytes) -> dict:
    """The first request's method, target and header fields as written: lines split on CRLF
    or LF, a line starting with SP/HT continues the previous field (kept verbatim, so an
    unfolded value shows as a change), names as written, values without surrounding SP/HT.
    What a component forwarded or parsed is compared against this."""
    end = re.search(rb"\r?\n\r?\n", data)
    head = data[:end.start()] if end else data
    lines = re.split(rb"\r?\n", head)
    parts = lines[0].decode("latin-1").split(" ")
    fields: list[list[str]] = []
    for line in lines[1:]:
        text = line.decode("latin-1")
        if text[:1] in (" ", "\t") and fields:
            fields[-1][1] += "\r\n" + text
            continue
        name, _, value = text.partition(":")
        fields.append([name, value.strip(" \t")])
    return {"method": parts[0], "target": parts[1] if len(parts) > 1 else "",
            "version": parts[2] if len(parts) > 2 else "", "headers": fields}


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PLAIN = re.compile(r"[0-9A-Za-z-]+")


def restricted_names(data: bytes) -> list[str]:
    """The names `option http-restrict-req-hdr-names` acts on (valid tokens with a character
    other than letters, digits and '-'), when every name of the request is a valid token
    (else the request is refused for its names anyway)."""
    names = [n for n, _ in as_sent(data)["headers"]]
    if not all(_TOKEN.fullmatch(n) for n in names):
        return []
    return [n for n in names if not _PLAIN.fullmatch(n)]


# -- what `option accept-invalid-http-request` relaxes, read from the bytes ------------------
_DIGITS = re.compile(r"[0-9]+")
_URI_RELAXED = set('"<>\\^`{|}#') | {chr(c) for c in range(128, 256)}
"""Characters of a request target the option lets through (HAProxy 2.6's manual: RFC 3986
forbids them; HAProxy always blocks 0-32 and 127, "the remaining ones are blocked by default
unless this option is enabled", and it also allows a fragment '#')."""
_URI_BLOCKED = {chr(c) for c in range(33)} | {"\x7f"}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
"""HAProxy lowercases a name's ASCII letters and keeps every other byte."""


def framing(fields: list[list[str]]) -> str | None:
    """How HAProxy frames a request with these (name, value) fields, by RFC 9112 6.3 and
    HAProxy's checks: `chunked` when Transfer-Encoding is a list of tokens ending in a single
    chunked (a Content-Length beside it is dropped), `content-length N` when every
    Content-Length (and every member of a list) is the same 1*DIGIT, `none` without either;
    None when the framing fields are invalid (refused). Names are compared exactly, after
    lowercasing: a name with another character (`Transfer-Encoding `) is not a framing field.
    An obs-fold in a value counts as the space HAProxy replaces it with."""
    values: dict[str, list[str]] = {"content-length": [], "transfer-encoding": []}
    for name, value in fields:
        if name.lower() in values:
            unfolded = re.sub(r"\r?\n[ \t]+", " ", value)
            values[name.lower()] += [m.strip(" \t") for m in unfolded.split(",")]
    codings = [c.lower() for c in values["transfer-encoding"]]
    lengths = values["content-length"]
    if codings:
        if (not all(_TOKEN.fullmatch(c) for c in codings) or codings[-1] != "chunked"
                or codings.count("chunked") != 1):
            return None
        return "chunked"
    if lengths:
        if not all(_DIGITS.fullmatch(n) for n in lengths) or len(set(map(int, lengths))) != 1:
            return None
        return f"content-length {int(lengths[0])}"
    return "none"


def lenient_framing(data: bytes) -> dict | None:
    """What `option accept-invalid-http-request` lets through that strict HAProxy refuses,
    and how HAProxy then frames the request, from the bytes alone.

    HAProxy 2.6's manual: by default "invalid characters in header names are not permitted
    and cause an error"; the option relaxes "HAProxy's header name parser to accept any
    character" (the name still ends at ':' on its line, and is not empty), and the URI's
    characters other than 0-32 and 127. A name accepted that way is no known field: HAProxy
    forwards it as an unknown one and frames the request by the fields left.

    None when the request has none of those characters (the option changes nothing), a name
    the option does not save (empty, or a line without ':'), a request line other than
    METHOD SP target SP version or a target with a character HAProxy always blocks, or
    framing fields invalid once the relaxed names are unknown ones (refused anyway).
    Else {"relaxed": what the option relaxes (each name, or "target"), "unknown": those
    names as HAProxy forwards them (unknown fields), "framing": framing() of the rest}."""
    end = re.search(rb"\r?\n\r?\n", data)
    lines = re.split(rb"\r?\n", data[:end.start()] if end else data)
    if any(b":" not in line for line in lines[1:] if line[:1] not in (b" ", b"\t")):
        return None
    sent = as_sent(data)
    names = [n for n, _ in sent["headers"]]
    if any(not n for n in names) or len(lines[0].split(b" ")) != 3:
        return None
    target = sent["target"]
    if _URI_BLOCKED & set(target):
        return None
    unknown = [n for n in names if not _TOKEN.fullmatch(n)]
    relaxed = unknown + (["target"] if _URI_RELAXED & set(target) else [])
    if not relaxed:
        return None
    kept = framing([f for f in sent["headers"] if _TOKEN.fullmatch(f[0])])
    if kept is None:
        return None
    return {"relaxed": relaxed, "unknown": [n.translate(_ASCII_LOWER) for n in unknown],
            "framing": kept}
