#!/usr/bin/env python3
"""Writes the named seed inputs (fuzz/corpus/<target>/seed-*). Run from anywhere; rerun
after changing it. The rest of each corpus directory is what `cargo fuzz cmin` kept."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def get(target, extra=b"", version=b"HTTP/1.1"):
    return b"GET " + target + b" " + version + b"\r\nHost: localhost:8000\r\n" + extra + b"\r\n"


def curl(target):
    return (b"GET " + target + b" HTTP/1.1\r\nHost: localhost:8000\r\n"
            b"User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")


CURL_SESSION = b"".join(curl(t) for t in [
    b"/set?name=x&val=0", b"/get?name=x", b"/inc?name=x", b"/get?name=x", b"/get?name=y"])
AB = (b"GET /inc?name=i HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 127.0.0.1:8000\r\n"
      b"User-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n")
MANY_HEADERS = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"H%d: v\r\n" % k for k in range(65)) + b"\r\n"

VALID = {
    "curl-set": curl(b"/set?name=x&val=0"),
    "curl-get": curl(b"/get?name=x"),
    "curl-inc": curl(b"/inc?name=x"),
    "ab-keepalive": AB,
    "head": b"HEAD /get?name=i HTTP/1.1\r\nHost: x\r\n\r\n",
    "http10": get(b"/get?name=i", version=b"HTTP/1.0"),
    "http10-keepalive": get(b"/get?name=i", b"Connection: keep-alive\r\n", b"HTTP/1.0"),
    "close": get(b"/inc?name=i", b"Connection: close\r\n"),
    "metrics": get(b"/metrics"),
    "absolute-form": get(b"http://localhost:8000/get?name=i"),
    "escapes": get(b"/set?name=%e2%82%AC+x&val=-9223372036854775808"),
    "overflow": get(b"/inc?name=m"),
    "bad-val": get(b"/set?name=i&val=0x10"),
    "bad-escape": get(b"/get?name=%zz"),
    "not-utf8": get(b"/get?name=%ff"),
    "long-name": get(b"/get?name=" + b"n" * 257),
    "post": b"POST /set?name=i&val=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    "body": b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz",
    "lf-only": b"GET /get?name=i HTTP/1.1\nHost: x\n\n",
    "leading-crlf": b"\r\n\r\nGET /get?name=i HTTP/1.1\r\nHost: x\r\n\r\n",
    "not-found": get(b"/nope"),
    "partial": b"GET /get?name=i HTTP/1.1\r\nHost: loc",
    "chunked": b"POST /inc?name=i HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n0\r\nTrailer: t\r\n\r\n",
    "chunked-empty": get(b"/inc?name=i", b"Transfer-Encoding: chunked\r\n") + b"0\r\n\r\n",
    "host-ipv6": get(b"/get?name=i").replace(b"Host: localhost:8000", b"Host: [::1]:8000"),
    "http10-no-host": b"GET /get?name=i HTTP/1.0\r\n\r\n",
    "options-asterisk": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
}
BAD = {
    "garbage": b"GARBAGE\r\n\r\n",
    "bad-header": b"GET / HTTP/1.1\r\nHost: x\r\nBad header\r\n\r\n",
    "space-in-name": b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n",
    "folded": b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n folded\r\n\r\n",
    "tls-hello": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)),
    "cl-plus": get(b"/", b"Content-Length: +5\r\n"),
    "cl-minus": get(b"/", b"Content-Length: -1\r\n"),
    "cl-list": get(b"/", b"Content-Length: 5,6\r\n"),
    "cl-hex": get(b"/", b"Content-Length: 0x10\r\n"),
    "cl-empty": get(b"/", b"Content-Length: \r\n"),
    "cl-conflict": get(b"/", b"Content-Length: 1\r\nContent-Length: 2\r\n"),
    "cl-and-te": get(b"/", b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n"),
    "te-gzip": get(b"/", b"Transfer-Encoding: gzip\r\n"),
    "te-chunked-gzip": get(b"/", b"Transfer-Encoding: chunked, gzip\r\n"),
    "te-twice": get(b"/", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
    "te-http10": get(b"/", b"Transfer-Encoding: chunked\r\n", b"HTTP/1.0") + b"0\r\n\r\n",
    "chunk-bare-lf": get(b"/inc?name=i", b"Transfer-Encoding: chunked\r\n") + b"3\r\nabc\n0\r\n\r\n",
    "chunk-size-sign": get(b"/", b"Transfer-Encoding: chunked\r\n") + b"-3\r\nabc\r\n0\r\n\r\n",
    "chunk-size-overflow": get(b"/", b"Transfer-Encoding: chunked\r\n") + b"10000000000000003\r\n",
    "chunk-too-large": get(b"/", b"Transfer-Encoding: chunked\r\n") + b"100001\r\n",
    "no-host": b"GET /inc?name=i HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET /inc?name=i HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
    "bad-host": b"GET /inc?name=i HTTP/1.1\r\nHost: user@x.example/p, y.example\r\n\r\n",
    "fragment": get(b"/get?name=i#frag"),
    "raw-utf8-target": get("/get?name=é".encode()),
    "asterisk-get": get(b"*"),
    "body-too-large": get(b"/", b"Content-Length: 1048577\r\n"),
    "cl-huge": get(b"/", b"Content-Length: 99999999999999999999999\r\n"),
    "http2": b"GET / HTTP/2.0\r\n\r\n",
    "http12": b"GET / HTTP/1.2\r\n\r\n",
    "bad-version": b"GET / HTTX/1.1\r\n\r\n",
    "too-many-headers": MANY_HEADERS,
    "head-too-large": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "ctl-in-method": b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",
}

PIPELINED = get(b"/set?name=a&val=5") + b"\r\n" + b"GET /inc?name=a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz" + \
    get(b"/get?name=a") + b"HEAD /get?name=a HTTP/1.1\r\nHost: x\r\n\r\n" + \
    get(b"/get?name=a", b"Connection: keep-alive\r\n", b"HTTP/1.0") + get(b"/nope")
SMUGGLE = (b"POST /set?name=i&val=9 HTTP/1.1\r\nHost: x\r\nContent-Length: 28\r\n\r\n"
           b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\n\r\n" + get(b"/get?name=i"))
VALID_CHUNKED_THEN_GET = (b"POST /set?name=i&val=9 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"1c\r\nGET /inc?name=i HTTP/1.1\r\n\r\n\r\n0\r\n\r\n" + get(b"/get?name=i"))
STREAMS = {
    "curl-session": CURL_SESSION,
    "pipelined": PIPELINED,
    "burst-set-get": b"".join(get(b"/set?name=n%d&val=%d" % (k, k)) + get(b"/get?name=n%d" % k)
                              for k in range(20)),
    "burst-metrics": get(b"/metrics") * 100,
    "burst-inc": get(b"/inc?name=i") * 50,
    "body-looks-like-request": SMUGGLE,
    "close-then-more": get(b"/inc?name=i", b"Connection: close\r\n") + get(b"/inc?name=i"),
    "ab-keepalive": AB * 10,
    "new-counters": b"".join(get(b"/set?name=c%d&val=1" % k) for k in range(20)),
    "overflow": get(b"/inc?name=m") * 3,
    "chunked-then-get": VALID_CHUNKED_THEN_GET,
}
STREAMS.update({"bad-" + k: get(b"/inc?name=i") + v for k, v in BAD.items()})

# (name, flags, read-size table): see `Plan` in src/fuzzing.rs.
PLANS = [
    ("whole", 0x00, b""),
    ("bytes-eof", 0x01, b"\x00"),
    ("lazy-small-writes", 0x06, b"\x02\xc8\x10"),
    ("mixed-reads", 0x08, b"\x06\x0c\x80\xff\x01"),
    ("x4-eof-writes64", 0x99, b"\x1f\x03"),
]

QUERIES = {
    "plain": b"name=x&val=0",
    "plus": b"name=a+b",
    "euro": b"name=%e2%82%AC&val=%2B1",
    "percent": b"name=100%25",
    "first-wins": b"name=a&name=b&val=1&val=2",
    "empty-pairs": b"&&name=q&&=&val",
    "bad-escape": b"name=%zz",
    "short-escape": b"name=a%2",
    "not-utf8": b"name=%ff%c3",
    "bare-key": b"name&val=a=b",
    "escaped-key": b"na%6De=x",
    "utf8": "name=é€😀".encode(),
    "controls": b"\x00\x01\r\n%0d%0a",
}


# journal_crash: mode (0 always, 1 everysec, 2 no), turns, page size (0: 1 byte, 1: 3, 2: 16,
# 3: 64, 4: 4096), salt (2 bytes), per turn a count byte and one byte per change, the synced
# turn (everysec only), then per 8 pages a kept mask and a stale mask, and the size byte.
# See `journal_crash` in src/fuzzing.rs.
def crash(mode, turns, page, kept, stale, size, synced=None):
    out = bytes([mode, turns - 1, page, 0x5f, 0x3a])
    for k in range(turns):
        out += bytes([k % 4]) + bytes([(k * 37 + c * 11) & 0xff for c in range(1 + k % 4)])
    if synced is not None:
        out += bytes([synced])
    return out + bytes([kept, stale] * 8) + bytes([size])


CRASHES = {
    "always-whole": crash(0, 6, 2, 0xff, 0, 0),
    "always-cut": crash(0, 6, 1, 0xff, 0, 0x83),
    "always-torn-gap": crash(0, 6, 1, 0b11100011, 0, 0),
    "everysec-later-kept": crash(1, 10, 2, 0b11111100, 0, 0, synced=3),
    "everysec-hole-old-bytes": crash(1, 10, 2, 0b11110011, 0xff, 0, synced=2),
    "everysec-size-short": crash(1, 10, 3, 0b00000111, 0, 2, synced=5),
    "no-every-other-page": crash(2, 12, 2, 0b01010101, 0b00110011, 1),
    "no-nothing-kept": crash(2, 12, 4, 0, 0, 0),
}


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


for k, v in {**VALID, **{"bad-" + k: v for k, v in BAD.items()}}.items():
    write("parse_request", k, v)
for k, v in STREAMS.items():
    # Every stream once in one read, and a few of them under each plan.
    write("connection", k, bytes([0, 0]) + v)
for i, (k, v) in enumerate(sorted(STREAMS.items())):
    pname, flags, table = PLANS[1 + i % (len(PLANS) - 1)]
    write("connection", k + "-" + pname, bytes([flags, len(table)]) + table + v)
# Answers that come later (`n / 16` of the plan: counter requests answered n/16 - 1
# rounds after they were asked), under a few plans.
for i, k in enumerate(["pipelined", "burst-inc", "curl-session", "chunked-then-get",
                       "close-then-more", "bad-garbage", "ab-keepalive"]):
    pname, flags, table = PLANS[i % len(PLANS)]
    later = 1 + i % 4
    write("connection", k + "-later%d-" % later + pname,
          bytes([flags, later * 16 + len(table)]) + table + STREAMS[k])
for k, v in QUERIES.items():
    write("query", k, v)
for k, v in CRASHES.items():
    write("journal_crash", k, v)
