#!/usr/bin/env python3
"""Disk full, measured (BENCHMARKS.md "Reliability"): how a running server answers a batch that
does not fit, what of it stays in the log, and how soon ingest is back once space is.

    python3 scripts/disk_full.py target/debug/antibody

The server's file-size limit (RLIMIT_FSIZE, lowered with prlimit) stands in for a full disk:
a write past it fails as one on a full disk does, and nothing on this machine fills up. Runs
in a fresh temporary data dir on 127.0.0.1:18181 and stops the server it started.
"""
import subprocess, time, resource, os, urllib.request, urllib.error, glob, sys, tempfile
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/antibody")
os.chdir(tempfile.mkdtemp(prefix="antibody-disk-full-"))
KEY = "measure-admin-key-0123456789"
p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:18181", "--data-dir", "data"],
                     env=dict(os.environ, ANTIBODY_ADMIN_KEY=KEY), stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
U = "http://127.0.0.1:18181"

def main():
    def req(path, body=None):
        r = urllib.request.Request(U + path, data=body, headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/x-ndjson"})
        try:
            with urllib.request.urlopen(r, timeout=30) as resp: return resp.status, resp.read()
        except urllib.error.HTTPError as e: return e.code, e.read()
        except Exception as e: return 0, str(e).encode()
    while req("/readyz")[0] != 200: time.sleep(0.05)
    pad = "x" * 2000
    def batch(prefix, n): return "".join('{"id":"%s-%d","entity":"host:h%d","kind":"note","attrs":{"pad":"%s"}}\n' % (prefix, i, i % 10, pad) for i in range(n)).encode()
    print("warm", req("/v1/events", batch("warm", 1500))[0])
    seg = sorted(glob.glob("data/log/*.seg"))[-1]; before = os.path.getsize(seg)
    soft, hard = resource.prlimit(p.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(p.pid, resource.RLIMIT_FSIZE, (before + 65536, hard))
    t0 = time.time(); st, body = req("/v1/events", batch("b", 1000)); print("full:", st, round((time.time()-t0)*1000,1), "ms", body[:120])
    print("segment grew by", os.path.getsize(seg) - before, "bytes")
    for outage in [1.0, 10.0]:
        time.sleep(outage)
        resource.prlimit(p.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, hard))
        t1 = time.time()
        while req("/readyz")[0] != 200: time.sleep(0.01)
        print("outage %.0fs: ready %.2f s after space came back" % (outage, time.time() - t1))
        st, body = req("/v1/events", batch("b%d" % outage, 1000)); print("retry:", st, body[:80])
        resource.prlimit(p.pid, resource.RLIMIT_FSIZE, (os.path.getsize(sorted(glob.glob("data/log/*.seg"))[-1]) + 65536, hard))
        print("full again:", req("/v1/events", batch("c%d" % outage, 1000))[0])

try:
    main()
finally:
    p.kill()
    p.wait()
