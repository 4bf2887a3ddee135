"""antibody SDK: report AI-agent vitals in batches, ask for an agent's verdict, and send an
OpenAI client's calls through antibody's gateway.

    from antibody_sdk import Client, VitalsBatcher

    client = Client("http://127.0.0.1:8080", api_key="<ingest key>")
    with VitalsBatcher(client) as vitals:
        vitals.report("research-7", {"latency_ms": 812, "tokens": 1530, "tool_calls": 3})
    if client.verdict("agent:research-7").blocked:
        ...

The standard library is all it needs; `wrap_openai` needs the `openai` package.
"""

from .client import AntibodyError, Client, RetryPolicy, Verdict
from .batch import VitalsBatcher
from .gateway import gateway_options, wrap_openai

__all__ = [
    "AntibodyError",
    "Client",
    "RetryPolicy",
    "Verdict",
    "VitalsBatcher",
    "gateway_options",
    "wrap_openai",
]
