#!/usr/bin/env python3
"""ECS cache benchmark helpers (Python's standard library alone), for bench/ecs-cache.sh.

  ecs_cache.py gen N OUT.csv [SEED]     a synthetic GeoIP CSV of about N networks over
                                        1.0.0.0-223.255.255.255, neighbours often in one country
  ecs_cache.py sample N OUT [SEED]      N distinct random /24s in the same space, in random order
  ecs_cache.py ask PORT NAME SAMPLE OUT asks NAME A with ECS <each /24>/24; writes
                                        "subnet scope answer" per line
  ecs_cache.py cache FILE...            what a resolver's ECS cache holds after those answers
                                        (RFC 7871 7.3): one row per file
  ecs_cache.py sample127 N OUT          N distinct random /24s of 127/8
  ecs_cache.py via PORT NAME SAMPLE OUT asks a resolver NAME A from <each /24>.1, no ECS
"""
import random
import socket
import struct
import sys

COUNTRIES = {
    "NA": ["US", "CA", "MX"],
    "EU": ["DE", "GB", "FR", "NL", "IT", "ES", "PL", "SE"],
    "AS": ["JP", "CN", "IN", "SG", "KR"],
    "SA": ["BR", "AR", "CL"],
    "AF": ["ZA", "NG", "EG"],
    "OC": ["AU", "NZ"],
}
CONTINENT_WEIGHTS = [("NA", 30), ("EU", 30), ("AS", 25), ("SA", 6), ("AF", 5), ("OC", 4)]
START, END = 1 << 24, 224 << 24  # 1.0.0.0 .. 223.255.255.255


def ip(n):
    return socket.inet_ntoa(struct.pack("!I", n))


def gen(n, out, seed=1):
    rnd = random.Random(seed)
    conts = [c for c, w in CONTINENT_WEIGHTS for _ in range(w)]
    avg = (END - START) / n
    avg_len = 32 - max(0, round(avg).bit_length() - 1)
    at, rows, country = START, 0, "US"
    with open(out, "w") as f:
        f.write("network,continent,country\n")
        while at < END:
            length = min(30, max(8, avg_len + rnd.randint(-3, 3)))
            while at % (1 << (32 - length)):
                length += 1
            while at + (1 << (32 - length)) > END:
                length += 1
            if rnd.random() < 0.05:
                pass  # a gap: no data
            else:
                # Allocations come in runs: most networks are in the country of the previous one.
                if rnd.random() > 0.7:
                    cont = rnd.choice(conts)
                    country = rnd.choice(COUNTRIES[cont])
                cont = next(c for c, cs in COUNTRIES.items() if country in cs)
                f.write(f"{ip(at)}/{length},{cont},{country}\n")
                rows += 1
            at += 1 << (32 - length)
    print(f"{rows} networks written to {out}", file=sys.stderr)


def sample(n, out, seed=2):
    rnd = random.Random(seed)
    nets = rnd.sample(range(START >> 8, END >> 8), n)
    with open(out, "w") as f:
        for s in nets:
            f.write(ip(s << 8) + "\n")


def query(qid, name, subnet, source=24, ecs=True):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1)  # RD: a resolver resolves
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack("!HH", 1, 1)
    addr = socket.inet_aton(subnet)[: (source + 7) // 8]
    option = struct.pack("!HBB", 1, source, 0) + addr
    opt = struct.pack("!HH", 8, len(option)) + option if ecs else b""
    q += b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(opt)) + opt
    return q


def skip_name(m, i):
    while True:
        n = m[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1


def parse(m):
    """(rcode, [A addresses], ECS scope or None)."""
    _, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", m[:12])
    i = 12
    for _ in range(qd):
        i = skip_name(m, i) + 4
    addrs, scope = [], None
    for k in range(an + ns + ar):
        i = skip_name(m, i)
        t, _, _, rdlen = struct.unpack("!HHIH", m[i : i + 10])
        i += 10
        rd = m[i : i + rdlen]
        if k < an and t == 1:
            addrs.append(socket.inet_ntoa(rd))
        if t == 41:
            j = 0
            while j + 4 <= len(rd):
                code, olen = struct.unpack("!HH", rd[j : j + 4])
                if code == 8:
                    scope = rd[j + 7]
                j += 4 + olen
        i += rdlen
    return flags & 0xF, sorted(addrs), scope


def ask(port, name, sample_file, out, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    nets = [l.strip() for l in open(sample_file) if l.strip()]
    with open(out, "w") as f:
        for qid, net in enumerate(nets):
            for _ in range(5):
                s.sendto(query(qid & 0xFFFF, name, net), (host, int(port)))
                try:
                    m, _ = s.recvfrom(4096)
                except socket.timeout:
                    continue
                if struct.unpack("!H", m[:2])[0] == qid & 0xFFFF:
                    break
            else:
                sys.exit(f"no answer for {net}")
            rcode, addrs, scope = parse(m)
            f.write(f"{net} {scope} {','.join(addrs) or '-'}\n")


def cache(files):
    """A resolver's ECS cache (RFC 7871 7.3.1): an answer with scope S for client subnet C is
    kept under C/S and answers any later client inside C/S; a scope longer than the source
    prefix (24) only serves that /24. Clients come in sample order; nothing expires. One entry
    per cache miss."""
    print("| server | queries | cache entries (misses) | hit rate | distinct scopes | median scope | wrong answers from cache |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in files:
        rows = [l.split() for l in open(path) if l.strip()]
        entries = {}  # (network int, scope) -> answer
        misses = wrong = 0
        scopes = []
        for net, scope, answer in rows:
            c = struct.unpack("!I", socket.inet_aton(net))[0]
            hit = None
            for s in range(0, 25):
                key = (c & (((1 << 32) - 1) << (32 - s)) & 0xFFFFFFFF if s else 0, s)
                if key in entries:
                    hit = entries[key]
                    break
            scope = int(scope)
            scopes.append(scope)
            if hit is not None:
                wrong += hit != answer
                continue
            misses += 1
            s = min(scope, 24)
            entries[(c & (((1 << 32) - 1) << (32 - s)) & 0xFFFFFFFF if s else 0, s)] = answer
        scopes.sort()
        print(
            f"| {path} | {len(rows)} | {misses} | {100 * (1 - misses / len(rows)):.1f}% | "
            f"{len(set(scopes))} | /{scopes[len(scopes) // 2]} | {wrong} |"
        )


def sample127(n, out, seed=3):
    """N distinct random /24s of 127/8 (not 127.0.0/24): clients a resolver on loopback sees."""
    rnd = random.Random(seed)
    with open(out, "w") as f:
        for s in rnd.sample(range((127 << 16) + 1, 128 << 16), n):
            f.write(ip(s << 8) + "\n")


def via(port, name, sample_file, out, host="127.0.0.1"):
    """Asks a resolver from <each /24>.1 as the source address, without ECS: the resolver sends
    ECS for the client's /24 itself and caches by the scope returned."""
    nets = [l.strip() for l in open(sample_file) if l.strip()]
    with open(out, "w") as f:
        for qid, net in enumerate(nets):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(1.0)
            s.bind((net[: net.rindex(".")] + ".1", 0))
            for _ in range(5):
                s.sendto(query(qid & 0xFFFF, name, net, ecs=False), (host, int(port)))
                try:
                    m, _ = s.recvfrom(4096)
                except socket.timeout:
                    continue
                if struct.unpack("!H", m[:2])[0] == qid & 0xFFFF:
                    break
            else:
                sys.exit(f"no answer for {net}")
            s.close()
            rcode, addrs, scope = parse(m)
            f.write(f"{net} {scope} {','.join(addrs) or '-'}\n")


def proxy(listen, target, count_file):
    """A UDP relay from 127.0.0.1:LISTEN to 127.0.0.1:TARGET counting the queries that pass
    (what a resolver sent on to the server), written to COUNT_FILE after each one."""
    import select

    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", int(listen)))
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.connect(("127.0.0.1", int(target)))
    pending, n = {}, 0
    while True:
        ready, _, _ = select.select([front, back], [], [])
        if front in ready:
            m, peer = front.recvfrom(4096)
            pending[m[:2]] = peer
            back.send(m)
            n += 1
            with open(count_file, "w") as f:
                f.write(f"{n}\n")
        if back in ready:
            m = back.recv(4096)
            peer = pending.pop(m[:2], None)
            if peer:
                front.sendto(m, peer)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen":
        gen(int(args[0]), args[1], int(args[2]) if len(args) > 2 else 1)
    elif cmd == "sample":
        sample(int(args[0]), args[1], int(args[2]) if len(args) > 2 else 2)
    elif cmd == "ask":
        ask(args[0], args[1], args[2], args[3])
    elif cmd == "cache":
        cache(args)
    elif cmd == "proxy":
        proxy(args[0], args[1], args[2])
    elif cmd == "sample127":
        sample127(int(args[0]), args[1])
    elif cmd == "via":
        via(args[0], args[1], args[2], args[3])
    else:
        sys.exit(__doc__)
