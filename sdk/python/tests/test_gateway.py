"""The OpenAI wrapper's configuration of the real `openai` client (no network)."""

import os
import sys
import unittest
from unittest import mock

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import openai  # noqa: E402  (CI installs it; a missing package must fail, not skip)

from antibody_sdk import gateway_options, wrap_openai  # noqa: E402


class GatewayTest(unittest.TestCase):
    def test_a_new_client_points_at_the_gateway_with_the_agent_header(self):
        c = wrap_openai(agent_id="research-7", gateway_url="http://gw.internal:4000", api_key="ab_ingest")
        self.assertIsInstance(c, openai.OpenAI)
        self.assertEqual(str(c.base_url), "http://gw.internal:4000/v1/")
        self.assertEqual(c.api_key, "ab_ingest")
        self.assertEqual(c.default_headers["X-Agent-Id"], "research-7")
        self.assertEqual(c.auth_headers, {"Authorization": "Bearer ab_ingest"})

    def test_an_existing_client_keeps_its_options_and_headers(self):
        base = openai.OpenAI(
            api_key="sk-provider",
            timeout=7.0,
            max_retries=5,
            default_headers={"X-Team": "search"},
        )
        c = wrap_openai(base, agent_id="a1", gateway_url="http://127.0.0.1:4000/v1", api_key="ab_k")
        self.assertEqual(str(c.base_url), "http://127.0.0.1:4000/v1/")
        self.assertEqual((c.timeout, c.max_retries), (7.0, 5))
        self.assertEqual(c.default_headers["X-Team"], "search")
        self.assertEqual(c.default_headers["X-Agent-Id"], "a1")
        self.assertEqual(c.api_key, "ab_k")
        self.assertEqual(str(base.base_url), "https://api.openai.com/v1/", "the original is untouched")

    def test_async_clients_and_environment_defaults(self):
        env = {"ANTIBODY_GATEWAY_URL": "http://gw:4000/", "ANTIBODY_KEY": "ab_env"}
        with mock.patch.dict(os.environ, env):
            c = wrap_openai(openai.AsyncOpenAI(api_key="x"), agent_id="a2")
            self.assertIsInstance(c, openai.AsyncOpenAI)
            self.assertEqual(str(c.base_url), "http://gw:4000/v1/")
            self.assertEqual(c.api_key, "ab_env")
        with mock.patch.dict(os.environ, {}, clear=True):
            self.assertEqual(
                gateway_options("a3", api_key="k")["base_url"], "http://127.0.0.1:4000/v1"
            )
            with self.assertRaises(ValueError):
                gateway_options("a3")
        with self.assertRaises(ValueError):
            gateway_options("", api_key="k")


if __name__ == "__main__":
    unittest.main()
