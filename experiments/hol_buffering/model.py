"""Every prediction of hol-and-buffering, from the parameters alone.

Loss. The client's incoming packets are dropped independently with probability p. With the
proxy's loss recovery reduced to the retransmission timeout, a stream stalls (by at least
the 200 ms minimum RTO) exactly when a data segment of its connection is lost before its
last byte has arrived, within the round. On its own HTTP/1.1 connection a stream's response
is m1 = ceil((body + H1_HEADER_BYTES) / MSS) segments: P(stall) = 1 - (1 - p)^m1. On the
shared h2 connection the S responses are packed one after another into full segments; the
j-th to finish has its last byte in segment k_j = ceil(j (body + H2_FRAMING_BYTES) / MSS), so
P(stall) = 1 - (1 - p)^k_j and the share of stalled streams is their mean over j. Streams of
one round stall together (one loss stalls every later stream), so the sampling error of the
h2 share is that of R rounds' stalled fractions, computed here exactly from the geometric
position of a round's first loss.

Slow stream. HAProxy 2.6 advertises a 65,535-byte window per h2 stream but keeps at most one
tune.bufsize buffer per stream; when a stream's upstream stops reading, and the kernel's
socket buffers toward it (at most tcp_wmem max + tcp_rmem max) are full, that stream's next
DATA frame cannot be stored and the demultiplexer stops for the whole connection: every
sibling sent meanwhile waits until the upstream reads again. Predicted: when the upload is
larger than what the path can absorb (those socket buffers + bufsize + the stream window),
every sibling sent during the pause is answered only after the pause; on HTTP/1.1 the
siblings have their own connections and none waits.

Buffering. A tier that buffers whole bodies holds k x B after k uploads have arrived; its
limit is H above its memory at rest, so the kernel kills it during upload floor(H / B) + 1.
HAProxy streams: each upload holds a client and a server connection, each with at most an
input and an output buffer of tune.bufsize, so its memory grows by at most 2 C x 2 x bufsize
(the issue's maxconn x 2 x bufsize with maxconn = the 2 C connections), whatever B is.
"""

from __future__ import annotations

import math

MSS = 1448
"""TCP payload per segment on the lab's 1500-byte links with timestamps (1500 - 20 - 32)."""
H1_HEADER_BYTES = 188
"""Status line and headers of the backend's /bytes/N answer as HAProxy relays it over
HTTP/1.1 (measured once with this backend and HAProxy 2.6; a property of the software)."""
H2_FRAMING_BYTES = 142
"""The same answer's HEADERS frame (HPACK-indexed after the first round) and DATA frame
header on the h2 connection (measured the same way)."""
RTO_MIN_MS = 200.0
"""Linux's TCP_RTO_MIN: the shortest retransmission timeout, the floor of every stall."""


def h1_segments(body: int) -> int:
    return math.ceil((body + H1_HEADER_BYTES) / MSS)


def h2_segments(body: int, streams: int) -> list[int]:
    """k_j for j = 1..S: the segment holding the j-th finishing stream's last byte."""
    size = body + H2_FRAMING_BYTES
    return [math.ceil(j * size / MSS) for j in range(1, streams + 1)]


def stall_h1(p: float, body: int) -> float:
    return 1 - (1 - p) ** h1_segments(body)


def stall_h2(p: float, body: int, streams: int) -> float:
    ks = h2_segments(body, streams)
    return sum(1 - (1 - p) ** k for k in ks) / len(ks)


def h2_round_sd(p: float, body: int, streams: int) -> float:
    """Standard deviation of one round's stalled fraction on the h2 connection: it is
    #{j : k_j >= X} / S, X the first lost segment (geometric with parameter p)."""
    ks = h2_segments(body, streams)
    mean = second = 0.0
    for x in range(1, ks[-1] + 1):
        px = (1 - p) ** (x - 1) * p
        f = sum(1 for k in ks if k >= x) / len(ks)
        mean += px * f
        second += px * f * f
    return math.sqrt(max(second - mean * mean, 0.0))


def h2_tolerance(p: float, body: int, streams: int, rounds: int, sigmas: float = 3.0) -> float:
    return max(sigmas * h2_round_sd(p, body, streams) / math.sqrt(rounds),
               1 / (streams * rounds))


H2_STREAM_WINDOW = 65535
"""HAProxy 2.6's initial h2 stream window (tune.h2.initial-window-size)."""


def absorbed_bytes(bufsize: int, wmem_max: int, rmem_max: int) -> int:
    """The most of one stream's upload the path can hold while its upstream reads nothing."""
    return wmem_max + rmem_max + bufsize + H2_STREAM_WINDOW


def siblings_blocked(upload_bytes: int, bufsize: int, wmem_max: int, rmem_max: int,
                     shared: bool) -> float:
    """Predicted share of the siblings sent during the pause that wait for its end."""
    return 1.0 if shared and upload_bytes > absorbed_bytes(bufsize, wmem_max, rmem_max) \
        else 0.0


def tier_kill_upload(headroom_bytes: int, body_bytes: int) -> int:
    """The upload (1-based) during which the buffering tier reaches its limit."""
    return headroom_bytes // body_bytes + 1


def haproxy_bound_bytes(uploads: int, bufsize: int) -> int:
    return 2 * uploads * 2 * bufsize
