"""The real `mcp` Python client (pinned in .ci/sdk-python) through the gateway's MCP proxy of
the real binary, to a real `mcp` server (the package's own, over Streamable HTTP, run in this
process): the initialize / `Mcp-Session-Id` style and the stateless 2026-07-28 style, tools
listed and called, a revoked tool gone from the list and refused on call with -32602, a
quarantined agent refused; every call an `mcp` event of its agent."""

import asyncio
import logging
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import uvicorn  # noqa: E402  (comes with `mcp`; a missing package must fail, not skip)
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.server.mcpserver import MCPServer  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

from test_live import PLAYBOOKS, RULES, Server, eventually  # noqa: E402

# The SDK and its HTTP client log every request at INFO; the test's output is its asserts.
for noisy in ("httpx2", "mcp", "uvicorn"):
    logging.getLogger(noisy).setLevel(logging.WARNING)

MCP_RULES = RULES + """\
- id: sdk-test-quarantine
  kind: sdk_quarantine
  severity: high
  events: {kinds: [vitals]}
  signature: {fields: [command], literals: [quarantine-me]}
"""
MCP_PLAYBOOKS = PLAYBOOKS + """\
- id: sdk-test-quarantine
  trigger: {kinds: [sdk_quarantine]}
  mode: auto
  steps:
    - action: quarantine
      ttl: 1h
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool_server(port):
    """The `mcp` package's own server with two tools, served over Streamable HTTP."""
    tools = MCPServer("tools")

    @tools.tool()
    def search(query: str) -> str:
        """Search the docs."""
        return f"found: {query}"

    @tools.tool()
    def shell(command: str) -> str:
        """Run a command (never reached once revoked)."""
        return f"ran: {command}"

    app = tools.streamable_http_app()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the MCP server did not start")
        time.sleep(0.05)
    return server, thread


class McpClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        port = free_port()
        cls.tools, cls.thread = tool_server(port)
        config = f"""
[gateway]
listen = "127.0.0.1:0"
[[gateway.mcp_servers]]
name = "tools"
url = "http://127.0.0.1:{port}/mcp"
"""
        cls.server = Server(config, MCP_RULES, MCP_PLAYBOOKS)
        cls.key = cls.server.admin("POST", "/v1/keys", {"role": "ingest"})["key"]
        cls.url = f"http://{cls.server.gateway}/mcp/tools"

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        cls.tools.should_exit = True
        cls.thread.join(timeout=10)

    def client(self, agent, mode):
        http = create_mcp_http_client(headers={"Authorization": "Bearer " + self.key, "X-Agent-Id": agent})
        return Client(streamable_http_client(self.url, http_client=http), mode=mode, cache=None)

    def effect(self, agent, command, shows):
        self.server.admin(
            "POST",
            "/v1/events",
            {"entity": "agent:" + agent, "kind": "vitals", "metrics": {"tokens": 1}, "attrs": {"command": command}},
        )
        return eventually(lambda: (lambda v: v if shows(v) else None)(self.server.admin("GET", f"/v1/entities/agent:{agent}/verdict")))

    def baseline_n(self, entity, metric):
        try:
            return self.server.admin("GET", "/v1/entities/" + entity).get("baselines", {}).get(metric, {}).get("n")
        except Exception:
            return None

    def test_both_styles_list_and_call_and_revoked_tools_are_enforced(self):
        async def session(agent, mode):
            async with self.client(agent, mode) as c:
                names = sorted(t.name for t in (await c.list_tools()).tools)
                found = (await c.call_tool("search", {"query": "rust"})).content[0].text
                return names, found

        for agent, mode in (("py-legacy", "legacy"), ("py-stateless", "2026-07-28")):
            names, found = asyncio.run(session(agent, mode))
            self.assertEqual(names, ["search", "shell"], mode)
            self.assertEqual(found, "found: rust", mode)
        for agent in ("agent:py-legacy", "agent:py-stateless"):
            eventually(lambda a=agent: self.baseline_n(a, "arg_bytes") == 1 or None)

        # The response engine revokes `shell` (the rule and playbook of test_live).
        verdict = self.effect("py-legacy", "rm -rf /srv", lambda v: v["revoked_tools"])
        self.assertEqual(verdict["revoked_tools"], ["shell"])

        async def revoked(mode):
            async with self.client("py-legacy", mode) as c:
                names = [t.name for t in (await c.list_tools()).tools]
                with self.assertRaises(MCPError) as refused:
                    await c.call_tool("shell", {"command": "rm -rf /"})
                ok = (await c.call_tool("search", {"query": "still"})).content[0].text
                return names, refused.exception, ok

        for mode in ("legacy", "2026-07-28"):
            names, err, ok = asyncio.run(revoked(mode))
            self.assertEqual(names, ["search"], mode)
            self.assertEqual(err.code, -32602, mode)
            self.assertIn("`shell`", err.message)
            self.assertEqual(ok, "found: still")

    def test_a_quarantined_agent_is_refused(self):
        self.effect("py-q", "quarantine-me", lambda v: v["verdict"] == "quarantine")

        async def attempt(mode):
            async with self.client("py-q", mode) as c:
                await c.call_tool("search", {"query": "x"})

        for mode in ("legacy", "2026-07-28"):
            with self.assertRaises(Exception) as refused:
                asyncio.run(attempt(mode))
            text = repr(refused.exception)
            self.assertIn("quarantined", text, mode)


if __name__ == "__main__":
    unittest.main()
