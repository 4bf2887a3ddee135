"""The client and the batcher against a scripted server: retries, backoff, Retry-After,
refusals, batching and ids (no real sleeps: the sleep is recorded)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from antibody_sdk import AntibodyError, Client, RetryPolicy, VitalsBatcher  # noqa: E402
from fake_server import FakeServer  # noqa: E402

ACCEPTED = (202, {}, {"accepted": 1, "duplicates": 0, "rejected": []})


def client(url, sleeps, attempts=4):
    # Jitter off (the cap itself) so the backoff is exact.
    policy = RetryPolicy(attempts=attempts, base_s=0.5, max_s=3.0, jitter=lambda cap: cap)
    return Client(url, "ab_key", retry=policy, sleep=sleeps.append)


class ClientTest(unittest.TestCase):
    def test_retries_overload_and_unavailable_with_backoff_and_retry_after(self):
        script = [
            (503, {}, {"error": {"code": "unavailable", "message": "starting"}}),
            (429, {"Retry-After": "2"}, {"error": {"code": "overloaded", "message": "full"}}),
            (503, {}, {"error": {"code": "unavailable", "message": "x"}}),
            ACCEPTED,
        ]
        sleeps = []
        with FakeServer(script) as srv:
            answer = client(srv.url, sleeps).send_events([{"entity": "agent:a", "kind": "vitals", "id": "e1"}])
        self.assertEqual(answer["accepted"], 1)
        # 0.5 s, then the server's Retry-After (2 s), then 0.5·2² = 2 s.
        self.assertEqual(sleeps, [0.5, 2.0, 2.0])
        self.assertEqual(len(srv.requests), 4)
        self.assertTrue(all(r["json"][0]["id"] == "e1" for r in srv.requests), "same ids on every retry")
        self.assertEqual(srv.requests[0]["headers"]["Authorization"], "Bearer ab_key")

    def test_backoff_is_capped_and_gives_up_with_the_last_error(self):
        script = [(503, {}, {"error": {"code": "unavailable", "message": "down"}})] * 4
        sleeps = []
        with FakeServer(script) as srv:
            with self.assertRaises(AntibodyError) as ctx:
                client(srv.url, sleeps).send_events([])
        self.assertEqual((ctx.exception.status, ctx.exception.code), (503, "unavailable"))
        self.assertEqual(sleeps, [0.5, 1.0, 2.0])
        policy = RetryPolicy(base_s=0.5, max_s=3.0, jitter=lambda cap: cap)
        self.assertEqual(policy.delay(10, None), 3.0)
        self.assertEqual(policy.delay(0, 100.0), 3.0, "Retry-After is capped too")

    def test_a_refusal_is_not_retried(self):
        script = [(400, {}, {"error": {"code": "no_valid_events", "message": "item 0: missing entity"}})]
        sleeps = []
        with FakeServer(script) as srv:
            with self.assertRaises(AntibodyError) as ctx:
                client(srv.url, sleeps).send_events([{}])
        self.assertEqual(ctx.exception.code, "no_valid_events")
        self.assertIn("missing entity", ctx.exception.message)
        self.assertEqual((sleeps, len(srv.requests)), ([], 1))

    def test_unreachable_server_is_retried_then_reported(self):
        sleeps = []
        c = client("http://127.0.0.1:9", sleeps, attempts=3)
        with self.assertRaises(AntibodyError) as ctx:
            c.verdict("agent:a")
        self.assertEqual((ctx.exception.status, ctx.exception.code), (None, "unreachable"))
        self.assertEqual(len(sleeps), 2)

    def test_verdict_is_read_and_its_entity_quoted(self):
        body = {
            "verdict": "throttle",
            "until": "2026-12-08T00:00:00Z",
            "incident": "i-1",
            "rate": {"rate": 10, "per": "minute"},
            "revoked_tools": ["shell"],
            "budget": None,
        }
        with FakeServer([(200, {}, body)]) as srv:
            v = client(srv.url, []).verdict("agent:team/a b")
        self.assertEqual(srv.requests[0]["path"], "/v1/entities/agent%3Ateam%2Fa%20b/verdict")
        self.assertFalse(v.allowed)
        self.assertFalse(v.blocked)
        self.assertEqual(v.rate, {"rate": 10, "per": "minute"})
        self.assertFalse(v.tool_allowed("shell"))
        self.assertTrue(v.tool_allowed("search"))


class BatcherTest(unittest.TestCase):
    def test_batches_by_size_with_ids_and_agent_entities(self):
        answers = [(202, {}, {"accepted": 2, "duplicates": 0, "rejected": []})] * 2
        answers.append((202, {}, {"accepted": 1, "duplicates": 0, "rejected": []}))
        with FakeServer(answers) as srv:
            b = VitalsBatcher(client(srv.url, []), max_batch=2, clock=lambda: 1_700_000_000.0)
            for i in range(5):
                b.report("research-7", {"tokens": 100 + i}, {"model": "gpt-4o"})
            self.assertEqual(b.pending(), 1, "two full batches went out as they filled")
            self.assertEqual(b.flush(), 1)
        sizes = [len(r["json"]) for r in srv.requests]
        self.assertEqual(sizes, [2, 2, 1])
        events = [e for r in srv.requests for e in r["json"]]
        self.assertEqual({e["entity"] for e in events}, {"agent:research-7"})
        self.assertEqual({e["kind"] for e in events}, {"vitals"})
        self.assertEqual(len({e["id"] for e in events}), 5)
        self.assertEqual(events[0]["ts"], 1_700_000_000_000)
        self.assertEqual([e["metrics"]["tokens"] for e in events], [100, 101, 102, 103, 104])

    def test_a_failed_batch_stays_buffered_and_is_sent_again_with_the_same_ids(self):
        down = (503, {}, {"error": {"code": "unavailable", "message": "down"}})
        with FakeServer([down, down, ACCEPTED]) as srv:
            b = VitalsBatcher(client(srv.url, [], attempts=2), max_batch=10)
            b.report("a", {"tokens": 1}, id="fixed-id")
            with self.assertRaises(AntibodyError):
                b.flush()
            self.assertEqual(b.pending(), 1)
            self.assertEqual(b.flush(), 1)
            self.assertEqual(b.pending(), 0)
        self.assertEqual([r["json"][0]["id"] for r in srv.requests], ["fixed-id"] * 3)

    def test_report_never_fails_the_agent_when_the_server_is_down(self):
        down = (503, {}, {"error": {"code": "unavailable", "message": "down"}})
        with FakeServer([down, down, ACCEPTED]) as srv:
            b = VitalsBatcher(client(srv.url, [], attempts=2), max_batch=1)
            b.report("a", {"tokens": 1})  # the automatic flush fails: kept, not raised
            self.assertEqual(b.pending(), 1)
            b.close()
            self.assertEqual(b.pending(), 0)
        self.assertEqual(len(srv.requests), 3)

    def test_a_refused_batch_is_dropped_and_the_buffer_is_bounded(self):
        refused = (401, {}, {"error": {"code": "unauthorized", "message": "bad key"}})
        with FakeServer([refused]) as srv:
            b = VitalsBatcher(client(srv.url, []), max_batch=100, max_buffer=3)
            for i in range(5):
                b.report("a", {"tokens": i})
            self.assertEqual((b.pending(), b.dropped), (3, 2))
            with self.assertRaises(AntibodyError):
                b.flush()
            self.assertEqual(b.pending(), 0, "retrying a refusal cannot help")


if __name__ == "__main__":
    unittest.main()
