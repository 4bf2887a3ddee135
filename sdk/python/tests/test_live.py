"""The SDK against the real antibody binary (`ANTIBODY_BIN`, default target/debug/antibody):
vitals reported in batches are durable and counted once, and the verdict the response
engine publishes for the agent is what the SDK reads. The binary must exist: CI builds it
before this runs, and a missing one fails rather than skips."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from antibody_sdk import Client, VitalsBatcher  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ADMIN_KEY = "ab_sdk_test_bootstrap_admin_key_0123456789"

RULES = """\
- id: sdk-test-tool-abuse
  kind: tool_abuse
  severity: high
  events: {kinds: [vitals]}
  signature: {fields: [command], literals: [rm -rf]}
"""
PLAYBOOKS = """\
- id: sdk-test-contain
  trigger: {kinds: [tool_abuse]}
  mode: auto
  steps:
    - action: revoke_tools
      params: {tools: [shell]}
      ttl: 1h
    - action: rate_limit
      with_previous: true
      params: {rate: 10, per: minute}
      ttl: 1h
"""


class Server:
    """The binary on a free port; `config` (antibody.toml text) may start its gateway, whose
    address is then `gateway`."""

    def __init__(self, config=None, rules=RULES, playbooks=PLAYBOOKS):
        binary = os.environ.get("ANTIBODY_BIN") or os.path.join(ROOT, "target", "debug", "antibody")
        if not os.path.exists(binary):
            raise RuntimeError(f"antibody binary not found at {binary}: build it (cargo build) or set ANTIBODY_BIN")
        self.tmp = tempfile.TemporaryDirectory()
        data = os.path.join(self.tmp.name, "data")
        for sub, text in (("rules", rules), ("playbooks", playbooks)):
            os.makedirs(os.path.join(data, sub))
            with open(os.path.join(data, sub, "sdk-test.yml"), "w") as f:
                f.write(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANTIBODY_")}
        env["ANTIBODY_ADMIN_KEY"] = ADMIN_KEY
        args = [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data]
        if config is not None:
            path = os.path.join(self.tmp.name, "antibody.toml")
            with open(path, "w") as f:
                f.write(config)
            args += ["--config", path]
        self.gateway = None
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.url = self._wait_listening()

    def _wait_listening(self):
        found = []
        log = []

        def read():
            for line in self.proc.stderr:
                if self.gateway is None and "gateway serving on " in line:
                    self.gateway = line.split("gateway serving on ", 1)[1].split()[0]
                if not found and "listening on " in line:
                    found.append(line.split("listening on ", 1)[1].split()[0])
                log.append(line)

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 60
        while not found:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise RuntimeError("antibody did not start:\n" + "".join(log))
            time.sleep(0.05)
        return "http://" + found[0]

    def admin(self, method, path, body=None):
        req = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": "Bearer " + ADMIN_KEY, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.reader.join(timeout=10)
        self.proc.stderr.close()
        self.tmp.cleanup()


def eventually(check, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


class LiveTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.ingest_key = cls.server.admin("POST", "/v1/keys", {"role": "ingest"})["key"]

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def baseline_n(self, entity, metric):
        try:
            view = self.server.admin("GET", "/v1/entities/" + entity)
        except urllib.error.HTTPError:
            return None
        return view.get("baselines", {}).get(metric, {}).get("n")

    def test_vitals_in_batches_are_counted_once_and_the_verdict_follows_the_response(self):
        client = Client(self.server.url, self.ingest_key)
        self.assertTrue(client.verdict("agent:sdk-agent").allowed)
        batcher = VitalsBatcher(client, max_batch=7)
        for i in range(20):
            batcher.report("sdk-agent", {"tokens": 1500, "latency_ms": 800}, id=f"task-{i}")
        self.assertEqual(batcher.flush(), 20 - 14)
        eventually(lambda: self.baseline_n("agent:sdk-agent", "tokens") == 20 or None)
        # The same tasks again (a retry whose answers were lost): duplicates, not new data.
        answer = client.send_events(
            [{"entity": "agent:sdk-agent", "kind": "vitals", "metrics": {"tokens": 1500}, "id": "task-3"}]
        )
        self.assertEqual((answer["accepted"], answer["duplicates"]), (0, 1))
        # A task that ran a destructive command: the rule fires, the playbook revokes the
        # shell and rate-limits the agent, and the verdict says so.
        with VitalsBatcher(client) as b:
            b.report("sdk-agent", {"tokens": 1500}, {"command": "rm -rf /var/lib/app"}, id="task-bad")
        verdict = eventually(
            lambda: (lambda v: v if not v.allowed else None)(client.verdict("agent:sdk-agent"))
        )
        self.assertEqual(verdict.verdict, "throttle")
        self.assertFalse(verdict.tool_allowed("shell"))
        self.assertEqual(verdict.rate, {"rate": 10, "per": "minute"})
        self.assertTrue(verdict.incident)
        self.assertEqual(self.baseline_n("agent:sdk-agent", "tokens"), 21)


if __name__ == "__main__":
    unittest.main()
