"""The measurements of bench/edits.sh (Python's standard library alone).

  edits.py zones DIR COUNT RECORDS        COUNT zones of RECORDS names each (z00000.bench.test, ...)
  edits.py big DIR RECORDS                one zone of RECORDS names (big.bench.test) and two small ones
  edits.py edits KIND N OUT --api A --token F --dns D
        N edits through the admin API, each timed until its 2xx and until D answers it (polled
        every ~1 ms); KIND is record:ZONE/NAME (PUT of one name's records) or zone:ZONE (PUT of
        a whole small zone)
  edits.py reloads MODE N OUT --api A --token F --dns D --zones DIR --names N1,N2,... [--change FILE]
        N reloads (POST /api/v1/reload) while a steady stream of queries for the names runs;
        MODE is same (no file changed), one (one zone file changed before each: FILE, or the
        first) or all (every zone file changed before each); lost and failed answers are counted
  edits.py report DIR                     the results as markdown tables
"""

import http.client
import json
import os
import random
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Resolver, dns_query, median, pct, zone_text  # noqa: E402


def write_zones(zdir, count, records):
    os.makedirs(zdir, exist_ok=True)
    size = 0
    for z in range(count):
        name = f"z{z:05d}.bench.test"
        text = zone_text(name, records)
        size += len(text)
        with open(f"{zdir}/{name}.yaml", "w") as f:
            f.write(text)
    print(f"{count} zones, {count * records:,} records, {size / 1e6:.1f} MB of YAML")


def write_big(zdir, records):
    os.makedirs(zdir, exist_ok=True)
    text = zone_text("big.bench.test", records)
    with open(f"{zdir}/big.bench.test.yaml", "w") as f:
        f.write(text)
    for small in ("small.bench.test", "other.bench.test"):
        with open(f"{zdir}/{small}.yaml", "w") as f:
            f.write(zone_text(small, 10))
    print(f"big.bench.test: {records:,} records, {len(text) / 1e6:.1f} MB of YAML; small and other.bench.test: 10")


def small_zone(name, addr):
    """The JSON of a whole small zone whose `edit` name answers `addr`."""
    records = {"ns1": {"A": ["192.0.2.1"]}, "edit": {"A": [addr]}}
    for i in range(1, 10):
        records[f"h{i}"] = {"A": [f"10.0.0.{i}"]}
    return {
        "zone": name,
        "soa": {"mname": f"ns1.{name}.", "rname": f"hostmaster.{name}.", "serial": 1},
        "ns": [f"ns1.{name}."],
        "records": records,
        "gslb": {"www": {"policy": "failover", "datacenters": ["eu", "us"]}},
    }


class Api:
    def __init__(self, api, token):
        host, port = api.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        t = time.perf_counter()
        self.conn.request(method, path, body=body, headers=self.headers)
        r = self.conn.getresponse()
        text = r.read().decode(errors="replace")
        if r.status not in (200, 201):
            raise RuntimeError(f"{method} {path}: {r.status} {text[:200]}")
        return (time.perf_counter() - t) * 1e3


def edits(kind, n, out, api, token, dns):
    client = Api(api, token)
    res = Resolver(dns)
    verb, target = kind.split(":", 1)
    if verb == "record":
        zone, name = target.split("/", 1)
    else:
        zone, name = target, "edit"
    qname = f"{name}.{zone}"
    api_ms, seen_ms = [], []
    for i in range(n):
        addr = f"203.0.113.{i % 250 + 1}"
        if verb == "record":
            method, path, body = "PUT", f"/api/v1/zones/{zone}/records/{name}", json.dumps({"A": [addr]})
        else:
            method, path, body = "PUT", f"/api/v1/zones/{zone}", json.dumps(small_zone(zone, addr))
        reply = {}

        def send():
            try:
                reply["ms"] = client.call(method, path, body)
            except RuntimeError as e:
                reply["error"] = str(e)

        t0 = time.perf_counter()
        th = threading.Thread(target=send, daemon=True)
        th.start()
        tick = t0
        while res.a(qname) != {addr}:
            if "error" in reply:
                break
            if time.perf_counter() - t0 > 120:
                sys.exit(f"{kind} #{i}: {qname} not answered {addr} after 120 s")
            tick += 0.001
            pause = tick - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        seen = (time.perf_counter() - t0) * 1e3
        th.join()
        if "error" in reply:
            print(reply["error"], file=sys.stderr)
            break
        api_ms.append(reply["ms"])
        seen_ms.append(seen)
    result = {"what": "edits", "kind": kind, "n": n, "api_ms": api_ms, "seen_ms": seen_ms}
    if "error" in reply:
        result["error"] = reply["error"]
    with open(out, "w") as f:
        json.dump(result, f)


class Load:
    """A steady stream of A queries (RATE a second) from one socket; every reply is checked."""

    def __init__(self, dns, names, rate):
        host, port = dns.rsplit(":", 1)
        self.addr = (host, int(port))
        self.names = names
        self.rate = rate
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.settimeout(0.1)
        self.pending = {}  # qid -> time sent
        self.sent = self.ok = self.failed = self.late = 0
        self.rcodes = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def send_loop(self):
        t = time.perf_counter()
        while not self.stop.is_set():
            qid, q = dns_query(random.choice(self.names))
            with self.lock:
                if qid in self.pending:
                    continue
                self.pending[qid] = time.perf_counter()
            self.sock.sendto(q, self.addr)
            self.sent += 1
            t += 1 / self.rate
            pause = t - time.perf_counter()
            if pause > 0:
                time.sleep(pause)

    def recv_loop(self):
        while not (self.stop.is_set() and not self.pending) and not self.done.is_set():
            try:
                msg = self.sock.recv(4096)
            except socket.timeout:
                continue
            qid, flags, _qd, an = struct.unpack("!HHHH", msg[:8])
            with self.lock:
                sent = self.pending.pop(qid, None)
            if sent is None:
                continue
            rcode = flags & 0xF
            if time.perf_counter() - sent > 2:
                self.late += 1
            if rcode == 0 and an > 0:
                self.ok += 1
            else:
                self.failed += 1
                self.rcodes[rcode] = self.rcodes.get(rcode, 0) + 1

    def start(self):
        self.done = threading.Event()
        self.threads = [
            threading.Thread(target=self.send_loop, daemon=True),
            threading.Thread(target=self.recv_loop, daemon=True),
        ]
        for th in self.threads:
            th.start()

    def finish(self):
        self.stop.set()
        self.threads[0].join()
        time.sleep(2)  # a reply later than this counts as lost
        self.done.set()
        self.threads[1].join()
        return len(self.pending)


def rewrite(path, n):
    """Changes one zone file: its h1 answers another address, its serial moves."""
    with open(path) as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if line.startswith("  h1: "):
            lines[i] = f"  h1: {{ A: [198.18.{n >> 8 & 255}.{n & 255}] }}"
    text = "\n".join(lines)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def reloads(mode, n, out, api, token, dns, zdir, names, change=None):
    client = Api(api, token)
    res = Resolver(dns)
    files = sorted(os.path.join(zdir, f) for f in os.listdir(zdir) if f.endswith(".yaml"))
    load = Load(dns, names, 2000)
    load.start()
    time.sleep(1)
    ms, seen_ms = [], []
    for i in range(n):
        stamp = 1000 + i
        changed = {"same": [], "one": [change] if change else files[:1], "all": files}[mode]
        for f in changed:
            rewrite(f, stamp)
        t0 = time.perf_counter()
        ms.append(client.call("POST", "/api/v1/reload"))
        if changed:
            zone = os.path.basename(change or changed[0])[: -len(".yaml")]
            want = {f"198.18.{stamp >> 8 & 255}.{stamp & 255}"}
            while res.a(f"h1.{zone}") != want:
                if time.perf_counter() - t0 > 30:
                    sys.exit(f"reload {mode} #{i}: h1.{zone} not answered {want} after 30 s")
                time.sleep(0.001)
            seen_ms.append((time.perf_counter() - t0) * 1e3)
        time.sleep(0.2)
    lost = load.finish()
    result = {
        "what": "reloads",
        "mode": mode,
        "n": n,
        "files": len(files),
        "ms": ms,
        "seen_ms": seen_ms,
        "queries": load.sent,
        "ok": load.ok,
        "failed": load.failed,
        "rcodes": load.rcodes,
        "lost": lost,
        "late": load.late,
    }
    with open(out, "w") as f:
        json.dump(result, f)


def report(d):
    runs = [json.load(open(f"{d}/{f}")) for f in sorted(os.listdir(d)) if f.endswith(".json")]
    print("| setup | change | API → 200 p50 (ms) | p99 | max | new answer seen p50 (ms) | p99 | max |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        if r["what"] != "edits":
            continue
        verb, target = r["kind"].split(":", 1)
        what = f"PUT of one name ({target})" if verb == "record" else f"PUT of a whole small zone ({target})"
        a, s = r["api_ms"], r["seen_ms"]
        if "error" in r:
            print(f"| {r['setup']} | {what} | refused: {r['error']} | | | | | |")
            continue
        print(
            f"| {r['setup']} | {what} × {r['n']} | {pct(a, 50):.1f} | {pct(a, 99):.1f} | {max(a):.1f} "
            f"| {pct(s, 50):.1f} | {pct(s, 99):.1f} | {max(s):.1f} |"
        )
    print()
    print("| setup | reload | POST /reload → 200 p50 (ms) | max | queries | answered | lost | failed |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    modes = {"same": "no file changed", "one": "one zone file changed", "all": "every zone file changed"}
    for r in runs:
        if r["what"] != "reloads":
            continue
        print(
            f"| {r['setup']} | {modes[r['mode']]} × {r['n']} | {median(r['ms']):.1f} | {max(r['ms']):.1f} "
            f"| {r['queries']:,} | {r['ok']:,} | {r['lost']} | {r['failed']} {r['rcodes'] or ''} |"
        )


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    opts = dict(zip(sys.argv[5::2], sys.argv[6::2]))
    if cmd == "zones":
        write_zones(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "big":
        write_big(sys.argv[2], int(sys.argv[3]))
    elif cmd in ("edits", "reloads"):
        token = open(opts["--token"]).read().strip()
        if cmd == "edits":
            edits(sys.argv[2], int(sys.argv[3]), sys.argv[4], opts["--api"], token, opts["--dns"])
        else:
            reloads(
                sys.argv[2], int(sys.argv[3]), sys.argv[4], opts["--api"], token, opts["--dns"],
                opts["--zones"], opts["--names"].split(","), opts.get("--change"),
            )
        with open(sys.argv[4]) as f:
            r = json.load(f)
        r["setup"] = opts.get("--setup", "")
        with open(sys.argv[4], "w") as f:
            json.dump(r, f)
    elif cmd == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
