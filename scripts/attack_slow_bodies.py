#!/usr/bin/env python3
"""The issue-17 fair-ingest attack, against a running server on loopback: one tenant's
ingest key opens N requests to /v1/events that announce a body and send almost none of it
(slow senders), then another tenant sends small batches and we count what it gets.

    python3 scripts/attack_slow_bodies.py --url http://127.0.0.1:8080 --admin-key KEY

The admin key must be the bootstrap admin's (it creates the tenant `victim-<pid>`).
Bounded: N sockets, M victim requests, then everything is closed."""

import argparse, json, os, socket, statistics, time, urllib.error, urllib.parse, urllib.request


def call(url, method, path, key, body=b"", ctype="application/json"):
    req = urllib.request.Request(url + path, data=body if method != "GET" else None,
                                 method=method,
                                 headers={"Authorization": "Bearer " + key, "Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--admin-key", required=True)
    p.add_argument("--slow", type=int, default=32, help="slow bodies the attacker holds")
    p.add_argument("--requests", type=int, default=200, help="batches the victim sends")
    a = p.parse_args()
    host = urllib.parse.urlparse(a.url)
    addr = (host.hostname, host.port or 80)
    assert host.hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
    st, body = call(a.url, "POST", "/v1/keys", a.admin_key, b'{"role":"ingest"}')
    assert st == 201, body
    attacker = json.loads(body)["key"]
    st, body = call(a.url, "POST", "/v1/tenants", a.admin_key,
                    json.dumps({"name": f"victim-{os.getpid()}"}).encode())
    assert st == 201, body
    victim_admin = json.loads(body)["admin_key"]
    st, body = call(a.url, "POST", "/v1/keys", victim_admin, b'{"role":"ingest"}')
    victim = json.loads(body)["key"]
    held = []
    for _ in range(a.slow):
        s = socket.create_connection(addr)
        s.sendall(("POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n{" % attacker).encode())
        held.append(s)
    time.sleep(0.5)  # let the server read the heads
    batch = b"".join(b'{"entity":"agent:v%d","kind":"vitals","metrics":{"x":1}}\n' % i for i in range(100))
    codes, lat = {}, []
    t0 = time.time()
    for _ in range(a.requests):
        t = time.perf_counter()
        st, _ = call(a.url, "POST", "/v1/events", victim, batch, "application/x-ndjson")
        lat.append((time.perf_counter() - t) * 1000)
        codes[st] = codes.get(st, 0) + 1
    took = time.time() - t0
    for s in held:
        s.close()
    lat.sort()
    print(json.dumps({
        "slow_bodies": a.slow, "victim_requests": a.requests, "victim_statuses": codes,
        "victim_p50_ms": round(statistics.median(lat), 2),
        "victim_p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 2),
        "seconds": round(took, 2)}))


if __name__ == "__main__":
    main()
