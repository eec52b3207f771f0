#!/usr/bin/env python3
"""Measurements for bench/cluster.sh (Python's standard library only; loopback only).

  cluster.py zones DIR ZONES RECORDS TXNDIR PREFIX
      writes ZONES zone files of RECORDS A names each into DIR (a zones_dir), and the same
      documents (and the data centers) as `etcdctl txn` inputs into TXNDIR, 100 keys per
      transaction
  cluster.py changes KIND N OUT.json --api ADDR --token FILE --dns ADDR,ADDR --etcd URL --prefix P --held ZONES
      makes N changes through the admin API at ADDR, timing each from the request until every
      DNS server in --dns answers the new answer, and reads etcd's metrics and history around
      the series (--etcd none: no etcd). KIND: drain:ZONE (data center eu drained and undrained
      in turn, www.ZONE polled) or edit:ZONE/NAME (NAME given a new address each time)
  cluster.py ask ADDR NAME
      prints NAME's A answers from the DNS server at ADDR
  cluster.py report DIR
      prints the tables from the results bench/cluster.sh left in DIR
"""

import base64
import http.client
import json
import math
import os
import random
import socket
import struct
import sys
import threading
import time
import urllib.request

DATACENTERS = """\
datacenters:
  eu: { endpoints: [{ address: 198.51.100.10 }] }
  us: { endpoints: [{ address: 192.0.2.10 }] }
"""
EU, US = "198.51.100.10", "192.0.2.10"


# === zones ===


def zone_text(name, records):
    """A zone document of `records` A names (ns1 among them) and a failover name over eu, us."""
    lines = [
        f"zone: {name}",
        f"soa: {{ mname: ns1.{name}., rname: hostmaster.{name}., serial: 1 }}",
        f"ns: [ns1.{name}.]",
        "records:",
        "  ns1: { A: [192.0.2.1] }",
    ]
    for i in range(1, records):
        lines.append(f"  h{i}: {{ A: [10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}] }}")
    lines += ["gslb:", "  www: { policy: failover, datacenters: [eu, us] }", ""]
    return "\n".join(lines)


def write_zones(zdir, count, records, txndir, prefix):
    os.makedirs(zdir, exist_ok=True)
    os.makedirs(txndir, exist_ok=True)
    ops = [f"put {prefix}datacenters {json.dumps(DATACENTERS)}"]
    batch = 0
    size = 0
    for z in range(count):
        name = f"z{z:05d}.bench.test"
        text = zone_text(name, records)
        size += len(text)
        with open(f"{zdir}/{name}.yaml", "w") as f:
            f.write(text)
        # etcdctl txn reads Go-quoted values: JSON string escapes are a subset.
        ops.append(f"put {prefix}zones/{name} {json.dumps(text)}")
        if len(ops) >= 100 or z == count - 1:
            with open(f"{txndir}/{batch:04d}.txn", "w") as f:
                # No comparisons, the puts, no failure branch: each section ends with a blank line.
                f.write("\n" + "\n".join(ops) + "\n\n\n")
            batch += 1
            ops = []
    print(f"{count} zones, {count * records} records, {size / 1e6:.1f} MB of YAML, {batch} transactions")


# === DNS (just enough of it: one A question, the A answers) ===


def dns_query(name):
    qid = random.randrange(65536)
    q = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return qid, q + b"\0" + struct.pack("!HH", 1, 1)


def skip_name(msg, i):
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n


def a_answers(msg, qid):
    """The A addresses in a reply to `qid`, or None when it is not that reply."""
    if len(msg) < 12:
        return None
    rid, _flags, qd, an = struct.unpack("!HHHH", msg[:8])
    if rid != qid:
        return None
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    out = set()
    for _ in range(an):
        i = skip_name(msg, i)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[i : i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            out.add(socket.inet_ntoa(msg[i : i + 4]))
        i += rdlen
    return out


class Resolver:
    """One UDP socket to one server."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.2)

    def a(self, name):
        qid, q = dns_query(name)
        self.sock.sendto(q, self.addr)
        deadline = time.perf_counter() + 0.2
        while time.perf_counter() < deadline:
            try:
                got = a_answers(self.sock.recv(4096), qid)
            except socket.timeout:
                return None
            if got is not None:
                return got
        return None


# === etcd: metrics and history ===


def metrics(url):
    wanted = (
        "etcd_mvcc_put_total",
        "etcd_mvcc_delete_total",
        "etcd_mvcc_txn_total",
        "etcd_mvcc_db_total_size_in_bytes",
        "etcd_debugging_mvcc_db_total_size_in_bytes",
        "etcd_disk_wal_fsync_duration_seconds_count",
        "etcd_disk_wal_write_bytes_total",
        "etcd_disk_backend_commit_duration_seconds_count",
    )
    out = {}
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in wanted:
                out[parts[0]] = float(parts[1])
    return out


def etcd_range(url, body):
    req = urllib.request.Request(f"{url}/v3/kv/range", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def b64(b):
    return base64.b64encode(b).decode()


def prefix_range(prefix):
    p = prefix.encode()
    return {"key": b64(p), "range_end": b64(p[:-1] + bytes([p[-1] + 1]))}


def revision(url, prefix):
    return int(etcd_range(url, {**prefix_range(prefix), "count_only": True})["header"]["revision"])


def written(url, prefix, first, last):
    """Keys put and their key and value bytes in revisions first..last (each read at its own
    revision, filtered to the keys that revision modified)."""
    keys = kbytes = vbytes = 0
    for rev in range(first, last + 1):
        r = etcd_range(url, {**prefix_range(prefix), "revision": rev, "min_mod_revision": rev, "max_mod_revision": rev})
        for kv in r.get("kvs", []):
            keys += 1
            kbytes += len(base64.b64decode(kv["key"]))
            vbytes += len(base64.b64decode(kv.get("value", "")))
    return keys, kbytes, vbytes


# === changes through the API ===


def changes(kind, n, out, api, token, dns, etcd, prefix, held):
    host, port = api.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    others = [Resolver(a) for a in dns]
    verb, target = kind.split(":", 1)
    if verb == "drain":
        zone_name, rname = target, "www"  # the failover name over [eu, us]
    else:
        zone_name, rname = target.split("/", 1)
    qname = f"{rname}.{zone_name}"

    def plan(i):
        if verb == "drain":  # drains and undrains in turn: www flips between eu and us
            if i % 2 == 0:
                return "POST", "/api/v1/datacenters/eu/drain", None, {US}
            return "POST", "/api/v1/datacenters/eu/undrain", None, {EU}
        addr = f"203.0.113.{i % 250 + 1}"  # a new address each time
        return "PUT", f"/api/v1/zones/{zone_name}/records/{rname}", json.dumps({"A": [addr]}), {addr}

    clustered = etcd != "none"
    if clustered:
        m0 = metrics(etcd)
        rev0 = revision(etcd, prefix)
    api_ms, prop_ms = [], []
    for i in range(n):
        method, path, body, want = plan(i)
        reply = {}

        def send():
            t = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            reply["body"] = r.read().decode(errors="replace")
            reply["status"] = r.status
            reply["ms"] = (time.perf_counter() - t) * 1e3

        t0 = time.perf_counter()
        th = threading.Thread(target=send)
        th.start()
        pending = list(others)
        done_at = 0.0
        tick = t0
        while pending:
            for res in list(pending):
                if res.a(qname) == want:
                    pending.remove(res)
                    done_at = time.perf_counter()
            if time.perf_counter() - t0 > 10:
                sys.exit(f"{kind} #{i}: {qname} not answered {sorted(want)} by every node after 10 s")
            tick += 0.001
            pause = tick - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        th.join()
        if reply.get("status") not in (200, 201):
            sys.exit(f"{method} {path}: {reply.get('status')} {reply.get('body')}")
        api_ms.append(reply["ms"])
        prop_ms.append((done_at - t0) * 1e3)
    result = {"kind": kind, "n": n, "held": held, "api_ms": api_ms, "prop_ms": prop_ms}
    if clustered:
        m1 = metrics(etcd)
        rev1 = revision(etcd, prefix)
        keys, kbytes, vbytes = written(etcd, prefix, rev0 + 1, rev1)
        result.update(
            revisions=rev1 - rev0,
            keys_put=keys,
            key_bytes=kbytes,
            value_bytes=vbytes,
            metrics={k: m1.get(k, 0) - m0.get(k, 0) for k in m1},
        )
        if verb == "edit":
            r = etcd_range(etcd, {"key": b64(f"{prefix}zones/{zone_name}".encode())})
            result["zone_bytes"] = len(base64.b64decode(r["kvs"][0]["value"]))
    with open(out, "w") as f:
        json.dump(result, f)


# === report ===


def pct(xs, p):
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def median(xs):
    return pct(xs, 50)


def report(d):
    runs = [json.load(open(f"{d}/{f}")) for f in sorted(os.listdir(d)) if f.startswith("changes-")]
    size = {r["kind"].split(":")[1].split("/")[0]: r["zone_bytes"] for r in runs if "zone_bytes" in r}

    def label(r):
        if r["kind"].startswith("drain:"):
            return "drain / undrain of eu"
        zone = r["kind"].split(":", 1)[1].split("/")[0]
        return f"record edit in {zone} ({size[zone]:,} bytes)"

    def setup(r):
        return "3 nodes, etcd" if "metrics" in r else "1 node, files"

    print("### Propagation (changes sent to node 1's API, timed until the other nodes answer them)")
    print()
    print("Nodes 2 and 3 are polled every ~1 ms; a single node polls itself.")
    print()
    print("| change | setup | zones held | API → 2xx p50 (ms) | p99 | max | new answer everywhere p50 (ms) | p99 | max |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        a, p = r["api_ms"], r["prop_ms"]
        print(
            f"| {label(r)} × {r['n']} | {setup(r)} | {r['held']:,} | {pct(a, 50):.1f} | {pct(a, 99):.1f} | {max(a):.1f} "
            f"| {pct(p, 50):.1f} | {pct(p, 99):.1f} | {max(p):.1f} |"
        )
    print()
    print("### etcd writes per change (etcd's metrics and history around each series)")
    print()
    print(
        "| change | zones held | txns | keys put | keys deleted | key + value bytes | WAL bytes | WAL fsyncs "
        "| backend commits | db size growth (bytes) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        if "metrics" not in r:
            continue
        m, n = r["metrics"], r["n"]
        db = m.get("etcd_mvcc_db_total_size_in_bytes", m.get("etcd_debugging_mvcc_db_total_size_in_bytes", 0))
        print(
            f"| {label(r)} | {r['held']:,} | {r['revisions'] / n:.2f} | {r['keys_put'] / n:.2f} "
            f"| {m.get('etcd_mvcc_delete_total', 0) / n:.2f} "
            f"| {(r['key_bytes'] + r['value_bytes']) / n:,.0f} "
            f"| {m.get('etcd_disk_wal_write_bytes_total', 0) / n:,.0f} "
            f"| {m.get('etcd_disk_wal_fsync_duration_seconds_count', 0) / n:.2f} "
            f"| {m.get('etcd_disk_backend_commit_duration_seconds_count', 0) / n:.2f} "
            f"| {db / n:,.0f} |"
        )
    print()
    starts = {}
    with open(f"{d}/starts") as f:
        for line in f:
            who, secs, rss, hwm = line.split()
            starts.setdefault(who, []).append((float(secs), int(rss), int(hwm)))
    with open(f"{d}/seed") as f:
        seed = f.read().split()
    print(
        f"### Start-up with {seed[0]} zones / {int(seed[0]) * int(seed[1]):,} records "
        f"(medians of {len(starts['files'])} rounds)"
    )
    print()
    print(f"Seeding etcd: {seed[2]} s for {seed[3]} `etcdctl txn` calls; etcd's db then {int(seed[4]) / 1e6:.1f} MB.")
    print()
    print("| node | start → ready file (s) | VmRSS (MiB) | VmHWM (MiB) | time vs files | RSS vs files |")
    print("|---|---:|---:|---:|---:|---:|")
    names = {
        "files": "single node, zones_dir files",
        "cold": "cluster, no cache (reads etcd whole)",
        "cached": "cluster, restarted with its cache",
    }
    ref = None
    for who in ("files", "cold", "cached"):
        rows = starts[who]
        secs = median([r[0] for r in rows])
        rss = median([r[1] for r in rows]) / 1024
        hwm = median([r[2] for r in rows]) / 1024
        ref = ref or (secs, rss)
        print(f"| {names[who]} | {secs:.2f} | {rss:.0f} | {hwm:.0f} | {secs / ref[0]:.2f}× | {rss / ref[1]:.2f}× |")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "zones":
        write_zones(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6])
    elif cmd == "changes":
        kind, n, out = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        opts = dict(zip(sys.argv[5::2], sys.argv[6::2]))
        token = open(opts["--token"]).read().strip()
        changes(
            kind, n, out, opts["--api"], token, opts["--dns"].split(","), opts["--etcd"], opts["--prefix"], int(opts["--held"])
        )
    elif cmd == "ask":
        print(" ".join(sorted(Resolver(sys.argv[2]).a(sys.argv[3]) or [])))
    elif cmd == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
