#!/usr/bin/env python3
"""Bring np-guard nca's and Bulkhead's connectivity listings to one canonical form, and diff them.

    nca_normalise.py canon --from nca|bulkhead IN OUT   # canonical listing, sorted
    nca_normalise.py diff BULKHEAD_CANON NCA_CANON [--show N] [--json FILE]
    nca_normalise.py selftest                            # checks the parsers on known spellings

Both tools print one line per (source, destination) pair: `src => dst : conn`. They differ in:

* spelling: nca writes `All connections` and `{protocols:UDP,dst_ports:53}` cubes (protocol lists
  as `TCP, UDP` or `all but TCP`; several cubes joined by `,`; sometimes `All but {...}`, the
  complement of the cubes), and external addresses as bare `a.b.c.d-e.f.g.h`; Bulkhead writes
  `All Connections`, `TCP 53,UDP 53` and `a.b.c.d-e.f.g.h[External]`;
* the cut of external addresses: Bulkhead (like np-guard's netpol-analyzer) prints the fixed
  pieces cut by all CIDRs of a direction and never merges them; nca prints maximal ranges of
  one connectivity per cube, merging neighbours;
* nca can print one pair on several lines (one per cube of its result).

`canon` therefore reads either spelling into sets of (protocol, port ranges) over TCP, UDP and
SCTP only (Kubernetes policies speak of no other protocol; nca's `All connections` also covers
ICMP and the rest, which this comparison ignores), unions the lines of one pair, and for every
workload merges adjacent external ranges that have the same connections. Two listings are
equivalent exactly when their canonical forms are equal, whatever their cuts.
"""

import argparse
import ipaddress
import json
import re
import sys
from collections import defaultdict

PROTOS = ("SCTP", "TCP", "UDP")  # sorted as strings, as both tools print them
MAX_PORT = 65535
FULL = ((1, MAX_PORT),)
DIMENSIONS = ("protocols", "src_ports", "dst_ports", "icmp_type", "icmp_code", "methods", "hosts", "paths")


def union(ranges):
    """Sorted, merged (adjacent and overlapping) port ranges."""
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def subtract(ranges, holes):
    out = []
    for lo, hi in ranges:
        cur = lo
        for hlo, hhi in holes:
            if hhi < cur or hlo > hi:
                continue
            if hlo > cur:
                out.append((cur, hlo - 1))
            cur = max(cur, hhi + 1)
            if cur > hi:
                break
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


def parse_ports(text):
    ranges = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            ranges.append((int(a), int(b)))
        else:
            ranges.append((int(part), int(part)))
    return union(ranges)


class Conn:
    """Connections as protocol -> merged port ranges (TCP, UDP, SCTP only)."""

    def __init__(self, ports=None):
        self.ports = {p: r for p, r in (ports or {}).items() if r}

    @staticmethod
    def all():
        return Conn({p: FULL for p in PROTOS})

    def __or__(self, other):
        return Conn({p: union(self.ports.get(p, ()) + other.ports.get(p, ())) for p in PROTOS})

    def minus(self, other):
        return Conn({p: subtract(self.ports.get(p, ()), other.ports.get(p, ())) for p in PROTOS})

    def __bool__(self):
        return bool(self.ports)

    def __str__(self):
        if all(self.ports.get(p) == FULL for p in PROTOS):
            return "All Connections"
        items = []
        for p in PROTOS:
            r = self.ports.get(p)
            if r:
                items.append(p + " " + ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in r))
        return ",".join(items)


def parse_protocol_list(text):
    text = text.strip()
    if text == "*":
        return set(PROTOS)
    negate = text.startswith("all but ")
    if negate:
        text = text[len("all but "):]
    names = {t.strip().upper() for t in text.split(",") if t.strip()}
    return set(PROTOS) - names if negate else set(PROTOS) & names


DIM_SPLIT = re.compile(r",(?=(?:%s):)" % "|".join(DIMENSIONS))


def parse_cube(body):
    """One nca cube `protocols:TCP, UDP,dst_ports:53,80-90` (without braces)."""
    protos, ports = set(PROTOS), FULL
    for item in DIM_SPLIT.split(body):
        key, _, value = item.partition(":")
        key = key.strip()
        if key == "protocols":
            protos = parse_protocol_list(value)
        elif key == "dst_ports":
            ports = parse_ports(value)
        elif key in ("src_ports",) and parse_ports(value) != FULL:
            raise ValueError(f"source ports are not comparable: {body}")
        elif key not in DIMENSIONS:
            raise ValueError(f"unknown dimension {key!r} in {body!r}")
    return Conn({p: ports for p in protos})


def parse_nca_conn(text):
    text = text.strip()
    if text == "All connections":
        return Conn.all()
    if text == "No connections":
        return Conn()
    complement = text.startswith("All but ")
    if complement:
        text = text[len("All but "):]
    if text.startswith("{"):
        conn = Conn()
        for body in re.findall(r"\{([^{}]*)\}", text):
            conn = conn | parse_cube(body)
    else:  # only destination ports are restricted: every protocol with ports
        ports = parse_ports(text)
        conn = Conn({p: ports for p in PROTOS})
    return Conn.all().minus(conn) if complement else conn


def parse_bulkhead_conn(text):
    text = text.strip()
    if text == "All Connections":
        return Conn.all()
    ports = defaultdict(list)
    proto = None
    for item in text.split(","):
        item = item.strip()
        head, _, rest = item.partition(" ")
        if head in PROTOS:
            proto, item = head, rest
        if proto is None:
            raise ValueError(f"cannot read connections {text!r}")
        ports[proto].extend(parse_ports(item))
    return Conn({p: union(r) for p, r in ports.items()})


def parse_external(name):
    """`a-b` or `a-b[External]` or a single address → (version, first, last) or None."""
    name = name.removesuffix("[External]")
    first, _, last = name.partition("-")
    try:
        a = ipaddress.ip_address(first)
        b = ipaddress.ip_address(last) if last else a
    except ValueError:
        try:
            net = ipaddress.ip_network(name, strict=False)
        except ValueError:
            return None
        a, b = net.network_address, net.broadcast_address
    return (a.version, int(a), int(b))


def show_external(ext):
    version, a, b = ext
    f = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return f"{f(a)}-{f(b)}[External]"


def read_lines(path, tool):
    """Yields (src, dst, Conn) for every connection line of a listing."""
    parse_conn = parse_nca_conn if tool == "nca" else parse_bulkhead_conn
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if " => " not in line or " : " not in line:
                continue  # headers, warnings, run times
            pair, _, conn = line.partition(" : ")
            src, _, dst = pair.partition(" => ")
            yield src.strip(), dst.strip(), parse_conn(conn)


def merge_ranges(pieces):
    """[(first, last, Conn)] possibly overlapping → maximal disjoint ranges of equal Conn."""
    pieces = sorted(pieces, key=lambda p: (p[0], p[1]))
    if all(pieces[i][1] < pieces[i + 1][0] for i in range(len(pieces) - 1)):
        out = []  # disjoint (the usual case): merge neighbours of equal connections
        for a, b, c in pieces:
            if not c:
                continue
            if out and out[-1][1] + 1 == a and str(out[-1][2]) == str(c):
                out[-1] = (out[-1][0], b, c)
            else:
                out.append((a, b, c))
        return out
    points = sorted({a for a, _, _ in pieces} | {b + 1 for _, b, _ in pieces})
    out = []
    for lo, nxt in zip(points, points[1:]):
        hi = nxt - 1
        conn = Conn()
        for a, b, c in pieces:
            if a <= lo and hi <= b:
                conn = conn | c
        if not conn:
            continue
        if out and out[-1][1] + 1 == lo and str(out[-1][2]) == str(conn):
            out[-1] = (out[-1][0], hi, conn)
        else:
            out.append((lo, hi, conn))
    return out


def canonical(path, tool):
    pairs = {}  # (src, dst) -> Conn between workloads
    ext = defaultdict(list)  # (workload, direction, version) -> [(first, last, Conn)]
    for src, dst, conn in read_lines(path, tool):
        se, de = parse_external(src), parse_external(dst)
        if se and de:
            continue  # external to external: neither tool means to list it
        if se:
            ext[(dst, "in", se[0])].append((se[1], se[2], conn))
        elif de:
            ext[(src, "out", de[0])].append((de[1], de[2], conn))
        else:
            key = (src, dst)
            pairs[key] = pairs[key] | conn if key in pairs else conn
    lines = [f"{s} => {d} : {c}" for (s, d), c in pairs.items() if c]
    for (w, direction, version), pieces in ext.items():
        for a, b, c in merge_ranges(pieces):
            e = show_external((version, a, b))
            lines.append(f"{e} => {w} : {c}" if direction == "in" else f"{w} => {e} : {c}")
    lines.sort()
    return lines


def cmd_canon(args):
    lines = canonical(args.input, args.tool)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def split_line(line):
    pair, _, conn = line.partition(" : ")
    return pair, conn


def cmd_diff(args):
    def load(path):
        with open(path, encoding="utf-8") as f:
            return dict(split_line(line.rstrip("\n")) for line in f if line.strip())

    b, n = load(args.bulkhead), load(args.nca)
    keys = sorted(set(b) | set(n))
    diffs = [(k, b.get(k, "(nothing)"), n.get(k, "(nothing)")) for k in keys if b.get(k) != n.get(k)]
    result = {
        "bulkhead_lines": len(b),
        "nca_lines": len(n),
        "disagreements": len(diffs),
        "only_bulkhead": sum(1 for _, _, x in diffs if x == "(nothing)"),
        "only_nca": sum(1 for _, x, _ in diffs if x == "(nothing)"),
        "first": [{"pair": k, "bulkhead": x, "nca": y} for k, x, y in diffs[: args.show]],
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    print(f"{len(diffs)} disagreement(s): {result['only_bulkhead']} pair(s) only bulkhead allows, "
          f"{result['only_nca']} only nca allows, "
          f"{len(diffs) - result['only_bulkhead'] - result['only_nca']} with different connections")
    for k, x, y in diffs[: args.show]:
        print(f"  {k}\n      bulkhead: {x}\n      nca:      {y}")
    return 0


def cmd_selftest(_args):
    cases = [
        (parse_nca_conn, "All connections", "All Connections"),
        (parse_nca_conn, "No connections", ""),
        (parse_nca_conn, "{protocols:UDP,dst_ports:53}", "UDP 53"),
        (parse_nca_conn, "{protocols:TCP, UDP,dst_ports:53}", "TCP 53,UDP 53"),
        (parse_nca_conn, "{protocols:TCP,dst_ports:443-542,9100}", "TCP 443-542,9100"),
        (parse_nca_conn, "{protocols:TCP}", "TCP 1-65535"),
        (parse_nca_conn, "{protocols:TCP, UDP, SCTP}", "All Connections"),
        (parse_nca_conn, "{protocols:all but TCP}", "SCTP 1-65535,UDP 1-65535"),
        (parse_nca_conn, "{protocols:TCP,dst_ports:80},{protocols:UDP,dst_ports:53}", "TCP 80,UDP 53"),
        (parse_nca_conn, "All but {protocols:UDP,dst_ports:53}", "SCTP 1-65535,TCP 1-65535,UDP 1-52,54-65535"),
        (parse_nca_conn, "{dst_ports:80}", "SCTP 80,TCP 80,UDP 80"),
        (parse_bulkhead_conn, "All Connections", "All Connections"),
        (parse_bulkhead_conn, "TCP 53,UDP 53", "TCP 53,UDP 53"),
        (parse_bulkhead_conn, "SCTP 1-65535,TCP 1-65535,UDP 1-5352,5354-65535",
         "SCTP 1-65535,TCP 1-65535,UDP 1-5352,5354-65535"),
        (parse_bulkhead_conn, "TCP 8080,8081-8090,9555", "TCP 8080-8090,9555"),
    ]
    bad = 0
    for parse, text, want in cases:
        got = str(parse(text))
        if got != want:
            bad += 1
            print(f"selftest: {parse.__name__}({text!r}) = {got!r}, want {want!r}", file=sys.stderr)
    for name, want in [("10.0.0.0-10.255.255.255[External]", (4, 167772160, 184549375)),
                       ("1.2.3.4", (4, 16909060, 16909060)), ("ns/a[Deployment]", None)]:
        if parse_external(name) != want:
            bad += 1
            print(f"selftest: parse_external({name!r}) = {parse_external(name)}, want {want}", file=sys.stderr)
    a, t = Conn.all(), Conn({"TCP": ((80, 80),)})
    merged = merge_ranges([(0, 9, a), (10, 19, a), (20, 29, t), (40, 49, t)])
    if [(x, y, str(c)) for x, y, c in merged] != [(0, 19, "All Connections"), (20, 29, "TCP 80"),
                                                   (40, 49, "TCP 80")]:
        bad += 1
        print(f"selftest: merge_ranges gave {merged}", file=sys.stderr)
    overlapping = merge_ranges([(0, 19, t), (10, 29, Conn({"UDP": ((53, 53),)}))])
    if [(x, y, str(c)) for x, y, c in overlapping] != [(0, 9, "TCP 80"), (10, 19, "TCP 80,UDP 53"),
                                                        (20, 29, "UDP 53")]:
        bad += 1
        print(f"selftest: merge_ranges (overlapping) gave {overlapping}", file=sys.stderr)
    print("selftest: ok" if not bad else f"selftest: {bad} failure(s)", file=sys.stderr)
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("canon", help="canonical listing of one tool's output")
    c.add_argument("--from", dest="tool", choices=("nca", "bulkhead"), required=True)
    c.add_argument("input")
    c.add_argument("output")
    d = sub.add_parser("diff", help="pair-level differences of two canonical listings")
    d.add_argument("bulkhead")
    d.add_argument("nca")
    d.add_argument("--show", type=int, default=5)
    d.add_argument("--json")
    sub.add_parser("selftest", help="check the parsers on known spellings")
    args = ap.parse_args()
    return {"canon": cmd_canon, "diff": cmd_diff, "selftest": cmd_selftest}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main() or 0)
