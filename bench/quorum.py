#!/usr/bin/env python3
"""Measurements for bench/quorum.sh (Python's standard library only; loopback only).

  quorum.py config DIR failover --vip-port P --interval DUR
  quorum.py config DIR many --port P --targets N
      writes DIR/shared.yaml (checks: and datacenters:) and DIR/zones/example.com.yaml:
      `failover` is a failover name www over two data centers whose one endpoint each is an HTTP
      server on 127.0.41.1 and 127.0.42.1, checked every DUR (timeout 500 ms, or 80% of an
      interval under 1 s); `many` is N endpoints on 127.60.x.y in data centers of 100, all
      checked by one `tcp` check to port P
  quorum.py failover ROUNDS OUT.json --vip-port P --interval SECS --single NAME=DNS=API
            --cluster NAME=DNS=API,... --token FILE --etcd URL --prefix P
      serves the two HTTP targets itself; each round stops the primary's at a random phase of
      the probes and times, per node, the first DNS answer without it, then starts it again and
      times the first answer with it; the nodes' events give when each node's own view and its
      verdict changed
  quorum.py targets PORT N FLAP
      listens on PORT of the N addresses of `many` (accepting every connection, resetting it when
      the prober closes it); on SIGUSR1 stops listening on FLAP of them (spread over the data
      centers), on SIGUSR2 listens again
  quorum.py load OUT.json --etcd URL --token FILE --nodes NAME=PID=API,... --etcd-pid PID
            --targets-pid PID --targets N --flap K --window SECS --phase SECS
      once every node sees the N targets up: a steady window, then a storm window where the
      FLAP targets go down and up every PHASE seconds; etcd's revision (etcdctl endpoint status),
      its metrics (puts, deletes, WAL fsyncs, lease keep-alives received) and every process's CPU
      time are read around each
  quorum.py report DIR
      prints the tables from the results bench/quorum.sh left in DIR
"""

import json
import os
import random
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Resolver, etcd_range, prefix_range  # noqa: E402

PRIMARY, STANDBY = "127.0.41.1", "127.0.42.1"
PER_DC = 100


def target_address(i):
    """The i-th address of `many`: 127.60.<data center>.<1..100>."""
    return f"127.60.{i // PER_DC}.{i % PER_DC + 1}"


def flapping(n, k):
    """The indexes of the k targets that flap, spread evenly over the n."""
    step = max(1, n // k)
    return list(range(0, n, step))[:k]


# === configuration ===


ZONE = """\
zone: example.com
soa: { mname: ns1.example.com., rname: hostmaster.example.com. }
ns: [ns1.example.com.]
records: { ns1: { A: [127.0.0.1] } }
gslb:
  www: { policy: failover, ttl: 5, datacenters: [%s] }
"""


def seconds(text):
    """`1s`, `100ms` in seconds."""
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))


def write_config(d, kind, opts):
    os.makedirs(f"{d}/zones", exist_ok=True)
    if kind == "failover":
        interval = seconds(opts["--interval"])
        timeout = "500ms" if interval >= 1 else f"{round(interval * 800)}ms"
        shared = (
            "checks:\n"
            f"  web: {{ type: http, port: {opts['--vip-port']}, path: /healthz, body_contains: ok, "
            f"interval: {opts['--interval']}, timeout: {timeout}, rise: 2, fall: 2 }}\n"
            "datacenters:\n"
            f"  primary: {{ endpoints: [{{ address: {PRIMARY}, check: web }}] }}\n"
            f"  standby: {{ endpoints: [{{ address: {STANDBY}, check: web }}] }}\n"
        )
        zone = ZONE % "primary, standby"
    else:
        n = int(opts["--targets"])
        lines = [
            "checks:",
            f"  t: {{ type: tcp, port: {opts['--port']}, interval: 1s, timeout: 500ms, rise: 2, fall: 2 }}",
            "datacenters:",
        ]
        for dc in range((n + PER_DC - 1) // PER_DC):
            lines.append(f"  dc{dc}:")
            lines.append("    endpoints:")
            for i in range(dc * PER_DC, min(n, (dc + 1) * PER_DC)):
                lines.append(f"      - {{ address: {target_address(i)}, check: t }}")
        shared = "\n".join(lines) + "\n"
        zone = ZONE % ", ".join(sorted({"dc0", f"dc{dc}"}))
    with open(f"{d}/shared.yaml", "w") as f:
        f.write(shared)
    with open(f"{d}/zones/example.com.yaml", "w") as f:
        f.write(zone)


# === the nodes: DNS, admin API, /proc ===


class Node:
    """One server, from NAME=DNS=API (failover) or NAME=PID=API (load)."""

    def __init__(self, spec, token):
        parts = spec.split("=")
        self.name = parts[0]
        if len(parts) == 3 and ":" in parts[1]:
            self.dns, self.api, self.pid = parts[1], parts[2], None
        else:
            self.pid, self.api, self.dns = int(parts[1]), parts[2], None
        self.token = token
        self.resolver = Resolver(self.dns) if self.dns else None

    def get(self, path):
        req = urllib.request.Request(f"http://{self.api}{path}", headers={"Authorization": f"Bearer {self.token}"})
        t = time.time()
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                body = r.read().decode()
        except OSError as e:
            sys.exit(f"{self.name}: GET {path}: {e} after {time.time() - t:.1f} s")
        if time.time() - t > 1:
            print(f"  warning: {self.name} took {time.time() - t:.1f} s to answer GET {path}", file=sys.stderr)
        return body

    def events(self):
        return json.loads(self.get("/api/v1/events"))

    def metrics(self):
        """(endpoints up, endpoints down, health keys written, probes) from /metrics."""
        up = down = writes = probes = 0
        for line in self.get("/metrics").splitlines():
            if line.startswith("meridian_endpoint_up{"):
                if line.endswith(" 1"):
                    up += 1
                else:
                    down += 1
            elif line.startswith("meridian_cluster_health_writes_total"):
                writes = int(float(line.split()[-1]))
            elif line.startswith("meridian_probes_total{"):
                probes += int(float(line.split()[-1]))
        return up, down, writes, probes


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def parse_time(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def etcd_count(url, prefix):
    r = etcd_range(url, {**prefix_range(prefix), "count_only": True})
    return int(r.get("count", 0))


# === 1. failover convergence ===


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


class Vip:
    """An HTTP server on one address that can be stopped (connections refused) and restarted."""

    def __init__(self, addr, port):
        self.addr, self.port, self.server = addr, port, None

    def start(self):
        self.server = ThreadingHTTPServer((self.addr, self.port), Handler)  # bound and listening here
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.server = None


def transitions(node, events, since, addr, new):
    """(own view, verdict) times of `node`'s first transition of `addr` to `new` at or after `since`
    (in file mode the two are one event)."""
    own = verdict = None
    reason = ""
    for e in events:
        s = e["subject"]
        if not s.startswith("target ") or f"//{addr}:" not in s or e["new"] != new:
            continue
        t = parse_time(e["time"])
        if t < since - 0.002:  # event times are to the millisecond
            continue
        if " seen from " in s:
            own = t if own is None else min(own, t)
        elif verdict is None or t < verdict:
            verdict, reason = t, e["reason"]
    if node.name == "single":
        own = verdict
    return own, verdict, reason


def converge(nodes, want, since, limit):
    """The seconds from `since` to each node's first answer equal to `want` (polled every ~2 ms)."""
    got = {}
    tick = time.time()
    while len(got) < len(nodes):
        for n in nodes:
            if n.name not in got and n.resolver.a("www.example.com") == want:
                got[n.name] = time.time() - since
        if time.time() - since > limit:
            missing = [n.name for n in nodes if n.name not in got]
            sys.exit(f"www.example.com not answered {sorted(want)} by {missing} within {limit:.0f} s")
        tick += 0.002
        pause = tick - time.time()
        if pause > 0:
            time.sleep(pause)
    return got


def own_views_settled(nodes, since, new, limit, addr=PRIMARY):
    """Waits until every node's own view of `addr` has turned `new` since `since` (all three, not
    just the quorum), so that the next half-round starts from the same state everywhere."""
    deadline = time.time() + limit
    while True:
        events = {n.name: n.events() for n in nodes}
        missing = [n.name for n in nodes if transitions(n, events[n.name], since, addr, new)[0] is None]
        if not missing:
            return
        if time.time() > deadline:
            recent = [e for e in events[missing[0]] if e["subject"].startswith("target ")][-4:]
            sys.exit(
                f"the own view of {addr} did not turn {new} within {limit:.0f} s on {', '.join(missing)}; "
                f"{missing[0]}'s last events: {json.dumps(recent, indent=1)}"
            )
        time.sleep(0.05)


def half_round(nodes, since, want, new, limit):
    dns = converge(nodes, want, since, limit)
    own_views_settled(nodes, since, new, limit)
    out = {"dns": dns, "own": {}, "verdict": {}, "reason": {}}
    for n in nodes:
        own, verdict, reason = transitions(n, n.events(), since, PRIMARY, new)
        out["own"][n.name] = None if own is None else own - since
        out["verdict"][n.name] = None if verdict is None else verdict - since
        out["reason"][n.name] = reason
    return out


def failover(rounds, out, opts, token):
    port, interval = int(opts["--vip-port"]), seconds(opts["--interval"])
    single = Node(opts["--single"], token)
    cluster = [Node(s, token) for s in opts["--cluster"].split(",")]
    nodes = [single] + cluster
    limit = 10 * interval + 10
    # Every node of the cluster live (its nodes/ key), then every answer the primary.
    deadline = time.time() + 30
    while etcd_count(opts["--etcd"], opts["--prefix"] + "nodes/") < len(cluster):
        if time.time() > deadline:
            sys.exit("the three nodes are not all live in etcd after 30 s")
        time.sleep(0.1)
    # The nodes started with both targets down: every node's own view of both turns up first.
    primary, standby = Vip(PRIMARY, port), Vip(STANDBY, port)
    started = time.time()
    standby.start()
    primary.start()
    for addr in (STANDBY, PRIMARY):
        own_views_settled(nodes, started, "up", limit, addr)
    converge(nodes, {PRIMARY}, time.time(), limit)
    results = []
    for r in range(rounds):
        time.sleep(0.2 + random.uniform(0, interval))  # a random phase of the probes
        t0 = time.time()
        primary.stop()
        down = half_round(nodes, t0, {STANDBY}, "down", limit)
        time.sleep(0.2 + random.uniform(0, interval))
        t1 = time.time()
        primary.start()
        up = half_round(nodes, t1, {PRIMARY}, "up", limit)
        results.append({"down": down, "up": up})
        print(
            f"  round {r + 1}: down: single {down['dns']['single']:.2f} s, all three "
            f"{max(down['dns'][n.name] for n in cluster):.2f} s; back: single {up['dns']['single']:.2f} s, "
            f"all three {max(up['dns'][n.name] for n in cluster):.2f} s",
            file=sys.stderr,
        )
    for r in results:
        for half in ("down", "up"):
            for n in cluster:
                reason = r[half]["reason"][n.name]
                if reason and " of 3 " not in reason and " of 3)" not in reason:
                    sys.exit(f"{n.name}'s verdict was not counted over three nodes: {reason}")
    with open(out, "w") as f:
        json.dump({"interval": interval, "cluster": [n.name for n in cluster], "rounds": results}, f)


# === 2. the targets of `many` ===


def targets(port, n, flap):
    addrs = [target_address(i) for i in range(n)]
    flappers = set(flapping(n, flap))
    sel = selectors.DefaultSelector()
    socks = {}

    def listen(i):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addrs[i], port))
        s.listen(128)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks[i] = s

    def close(i):
        s = socks.pop(i)
        sel.unregister(s)
        s.close()

    for i in range(n):
        listen(i)
    wanted = {"down": False}
    signal.signal(signal.SIGUSR1, lambda *_: wanted.update(down=True))
    signal.signal(signal.SIGUSR2, lambda *_: wanted.update(down=False))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    down = False
    while True:
        if wanted["down"] != down:
            down = wanted["down"]
            for i in sorted(flappers):
                close(i) if down else listen(i)
        for key, _ in sel.select(timeout=0.05):
            if key.data == "conn":
                # The prober closed (its probe is over): answered with a reset, so that neither
                # side keeps the connection in TIME_WAIT. Thousands of connections a second
                # would otherwise fill the kernel's TIME_WAIT table, and new connections meeting
                # old ones there lose their SYN: probes time out that nothing is wrong with.
                sel.unregister(key.fileobj)
                key.fileobj.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                key.fileobj.close()
                continue
            while True:
                try:
                    c, _ = key.fileobj.accept()
                except OSError:  # nothing more to accept (or the listener just closed)
                    break
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ, "conn")


# === 2. etcd's load ===


def etcd_metrics(url):
    out = {}
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            if name in (
                "etcd_mvcc_put_total",
                "etcd_mvcc_delete_total",
                "etcd_mvcc_txn_total",
                "etcd_disk_wal_fsync_duration_seconds_count",
                "etcd_disk_wal_write_bytes_total",
            ):
                out[name] = float(value)
            elif 'grpc_method="LeaseKeepAlive"' in name:
                key = "keepalive_" + name.split("{")[0].removeprefix("grpc_server_")
                out[key] = out.get(key, 0) + float(value)
    return out


def etcd_revision(url):
    r = subprocess.run(
        ["etcdctl", f"--endpoints={url}", "endpoint", "status", "-w", "json"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "ETCDCTL_API": "3"},
    )
    return int(json.loads(r.stdout)[0]["Status"]["header"]["revision"])


def snapshot(url, nodes, pids):
    snap = {"t": time.time(), "revision": etcd_revision(url), "etcd": etcd_metrics(url), "ticks": {}, "nodes": {}}
    for who, pid in pids.items():
        snap["ticks"][who] = cpu_ticks(pid)
    for n in nodes:
        up, down, writes, probes = n.metrics()
        snap["nodes"][n.name] = {"up": up, "down": down, "writes": writes, "probes": probes}
    return snap


def load(out, opts, token):
    url = opts["--etcd"]
    nodes = [Node(s, token) for s in opts["--nodes"].split(",")]
    n, window, phase = int(opts["--targets"]), float(opts["--window"]), float(opts["--phase"])
    flap = int(opts["--flap"])
    target_pid = int(opts["--targets-pid"])
    pids = {m.name: m.pid for m in nodes}
    pids["etcd"] = int(opts["--etcd-pid"])
    pids["targets"] = target_pid
    t_start = time.time()
    while True:
        counts = {m.name: m.metrics()[:2] for m in nodes}
        if all(c == (n, 0) for c in counts.values()):
            break
        if time.time() - t_start > 60:
            sys.exit(f"not every node sees the {n} targets up after 60 s: {counts}")
        time.sleep(0.5)
    time.sleep(5)  # the views published at start are written
    print(f"  all {n} targets up on every node; steady window of {window:.0f} s", file=sys.stderr)
    s0 = snapshot(url, nodes, pids)
    time.sleep(window)
    s1 = snapshot(url, nodes, pids)
    phases = max(2, int(window / phase) // 2 * 2)  # down and up in turn, ending up
    print(f"  storm: {flap} targets down and up every {phase:.0f} s, {phases} phases", file=sys.stderr)
    s2 = snapshot(url, nodes, pids)
    seen = []
    t = time.time()
    for k in range(phases):
        os.kill(target_pid, signal.SIGUSR2 if k % 2 else signal.SIGUSR1)
        t += phase
        time.sleep(max(0.0, t - time.time() - 0.3))
        seen.append({m.name: m.metrics()[1] for m in nodes})  # endpoints down near the end of the phase
        time.sleep(max(0.0, t - time.time()))
    s3 = snapshot(url, nodes, pids)
    for k, s in enumerate(seen):
        want = 0 if k % 2 else flap
        if any(v != want for v in s.values()):
            print(f"  warning: phase {k + 1} ended with {s} endpoints down (expected {want})", file=sys.stderr)
    with open(out, "w") as f:
        json.dump(
            {
                "targets": n,
                "flap": flap,
                "phase": phase,
                "hz": os.sysconf("SC_CLK_TCK"),
                "steady": [s0, s1],
                "storm": [s2, s3],
                "storm_down_seen": seen,
                "nodes": [m.name for m in nodes],
            },
            f,
        )


# === report ===


def mean(xs):
    return statistics.fmean(xs)


def report(d):
    runs = [json.load(open(f"{d}/{f}")) for f in sorted(os.listdir(d)) if f.startswith("failover-")]
    print("### Failover convergence: one node in file mode beside three nodes deciding by majority")
    print()
    print(
        "| interval | rounds | direction | single node: answer moved, mean (s) | max | "
        "three nodes: every node moved, mean (s) | max | ratio of means | first to last node, max (ms) "
        "| deciding vote to last node's verdict, mean (ms) | max (ms) |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        cluster = run["cluster"]
        for half, label in (("down", "target dies"), ("up", "target back")):
            single, every, spread, lag = [], [], [], []
            for r in run["rounds"]:
                h = r[half]
                single.append(h["dns"]["single"])
                times = [h["dns"][c] for c in cluster]
                every.append(max(times))
                spread.append((max(times) - min(times)) * 1e3)
                own = sorted(h["own"][c] for c in cluster if h["own"][c] is not None)
                verdicts = [h["verdict"][c] for c in cluster if h["verdict"][c] is not None]
                if len(own) >= 2 and len(verdicts) == len(cluster):
                    # Majority of three: the second node whose own view turns decides.
                    lag.append((max(verdicts) - own[1]) * 1e3)
            interval = run["interval"]
            shown = f"{interval * 1000:.0f} ms" if interval < 1 else f"{interval:g} s"
            lag_mean = f"{mean(lag):.1f}" if lag else "–"
            lag_max = f"{max(lag):.1f}" if lag else "–"
            print(
                f"| {shown} | {len(run['rounds'])} | {label} | {mean(single):.3f} | {max(single):.3f} "
                f"| {mean(every):.3f} | {max(every):.3f} | {mean(every) / mean(single):.2f}× | {max(spread):.1f} "
                f"| {lag_mean} | {lag_max} |"
            )
    print()
    path = f"{d}/load.json"
    if not os.path.exists(path):
        return
    run = json.load(open(path))
    hz = run["hz"]
    cluster = [m for m in run["nodes"] if m != "single"]
    print(
        f"### etcd's load: {run['targets']:,} targets probed every second by three nodes "
        f"(and by one node in file mode, the peer)"
    )
    print()
    print(
        "| window | seconds | revisions/s | keys put/s | keys deleted/s | WAL fsyncs/s | WAL bytes/s "
        "| lease keep-alives/s | health keys written by the nodes/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = {}
    for which, label in (
        ("steady", "steady (all up)"),
        ("storm", f"storm ({run['flap']} down and up every {run['phase']:g} s)"),
    ):
        a, b = run[which]
        secs = b["t"] - a["t"]

        def rate(key, a=a, b=b, secs=secs):
            return (b["etcd"].get(key, 0) - a["etcd"].get(key, 0)) / secs

        writes = sum(b["nodes"][c]["writes"] - a["nodes"][c]["writes"] for c in cluster) / secs
        print(
            f"| {label} | {secs:.1f} | {(b['revision'] - a['revision']) / secs:.2f} "
            f"| {rate('etcd_mvcc_put_total'):.2f} | {rate('etcd_mvcc_delete_total'):.2f} "
            f"| {rate('etcd_disk_wal_fsync_duration_seconds_count'):.2f} | {rate('etcd_disk_wal_write_bytes_total'):,.0f} "
            f"| {rate('keepalive_msg_received_total'):.2f} | {writes:.2f} |"
        )
        rows[which] = (a, b, secs)
    print()
    print("CPU, % of one core (utime + stime from /proc), and the probes each node ran:")
    print()
    names = cluster + ["single", "etcd", "targets"]
    print("| window | " + " | ".join(names) + " | cluster node mean vs single | probes/s per node |")
    print("|---|" + "---:|" * len(names) + "---:|---:|")
    for which, (a, b, secs) in rows.items():
        pct = {w: 100 * (b["ticks"][w] - a["ticks"][w]) / hz / secs for w in names}
        probes = [(b["nodes"][w]["probes"] - a["nodes"][w]["probes"]) / secs for w in cluster + ["single"]]
        ratio = mean([pct[c] for c in cluster]) / pct["single"] if pct["single"] else float("nan")
        print(
            f"| {which} | "
            + " | ".join(f"{pct[w]:.1f}" for w in names)
            + f" | {ratio:.2f}× | {min(probes):.0f}–{max(probes):.0f} |"
        )
    seen = run["storm_down_seen"]
    print()
    print(
        "Endpoints down near the end of each storm phase, per node: "
        + "; ".join(", ".join(f"{k} {v}" for k, v in s.items()) for s in seen)
    )


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "config":
        write_config(sys.argv[2], sys.argv[3], dict(zip(sys.argv[4::2], sys.argv[5::2])))
    elif cmd == "failover":
        opts = dict(zip(sys.argv[4::2], sys.argv[5::2]))
        failover(int(sys.argv[2]), sys.argv[3], opts, open(opts["--token"]).read().strip())
    elif cmd == "targets":
        targets(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "load":
        opts = dict(zip(sys.argv[3::2], sys.argv[4::2]))
        load(sys.argv[2], opts, open(opts["--token"]).read().strip())
    elif cmd == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
