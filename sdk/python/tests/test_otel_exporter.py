"""The official OpenTelemetry Python SDK's OTLP/HTTP exporter (protobuf, gzip) against the
real binary, configured only through the environment as docs/AGENTS.md says: its GenAI
spans become the agent's `llm` events and one task's `vitals`."""

import os
import sys
import unittest
from unittest import mock

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402
from opentelemetry.trace import Status, StatusCode  # noqa: E402

from test_live import Server, eventually  # noqa: E402


class OtelExporterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.key = cls.server.admin("POST", "/v1/keys", {"role": "ingest"})["key"]

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def baselines(self, entity):
        try:
            return self.server.admin("GET", "/v1/entities/" + entity).get("baselines", {})
        except Exception:
            return {}

    def test_genai_spans_from_the_official_exporter_become_llm_events_and_task_vitals(self):
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.server.url + "/v1/otlp",
            "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer " + self.key,
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        }
        with mock.patch.dict(os.environ, env):
            exporter = OTLPSpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "otel-svc"}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "otel-agent-1"}
        with tracer.start_as_current_span("invoke_agent planner", attributes=agent):
            for tokens in (100, 300):
                with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
                    chat.set_attributes(
                        {
                            "gen_ai.operation.name": "chat",
                            "gen_ai.provider.name": "openai",
                            "gen_ai.request.model": "gpt-4o-mini",
                            "gen_ai.usage.input_tokens": tokens,
                            "gen_ai.usage.output_tokens": 20,
                            "gen_ai.usage.cache_read.input_tokens": 64,
                        }
                    )
            with tracer.start_as_current_span("execute_tool search") as tool:
                tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"})
                tool.set_status(Status(StatusCode.ERROR, "timeout"))
        self.assertTrue(provider.force_flush(30_000), "the exporter could not deliver")
        provider.shutdown()

        want = {"latency_ms": 2, "input_tokens": 2, "cached_tokens": 2, "tool_latency_ms": 1, "task_ms": 1}
        b = eventually(
            lambda: (lambda b: b if all(b.get(m, {}).get("n") == n for m, n in want.items()) else None)(
                self.baselines("agent:otel-agent-1")
            )
        )
        self.assertEqual(b["input_tokens"]["mean"], 200.0)
        self.assertEqual(b["tokens"]["mean"], 440.0, "the task's tokens: 100 + 300 + 2 × 20")
        self.assertEqual(b["tool_calls"]["mean"], 1.0)
        self.assertEqual(b["llm_calls"]["mean"], 2.0)
        self.assertEqual(b["errors"]["mean"], 1.0)


if __name__ == "__main__":
    unittest.main()
