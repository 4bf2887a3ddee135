"""An OpenAI client whose calls go through antibody's LLM gateway.

The gateway speaks the OpenAI API at `<gateway>/v1`; the agent's antibody key stands in for
the provider key (antibody holds the provider's own), and `X-Agent-Id` names the agent so
its vitals and verdicts are its own.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

DEFAULT_GATEWAY = "http://127.0.0.1:4000"


def gateway_options(
    agent_id: str,
    *,
    gateway_url: Optional[str] = None,
    api_key: Optional[str] = None,
    headers: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """The options that point an OpenAI client at the gateway: `base_url`, `api_key` (the
    antibody key: argument, else `ANTIBODY_KEY`) and `default_headers` with `X-Agent-Id`."""
    if not agent_id:
        raise ValueError("agent_id is required: it names the agent in antibody")
    base = (gateway_url or os.environ.get("ANTIBODY_GATEWAY_URL") or DEFAULT_GATEWAY).rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    key = api_key or os.environ.get("ANTIBODY_KEY")
    if not key:
        raise ValueError("an antibody key is required: pass api_key or set ANTIBODY_KEY")
    merged = dict(headers or {})
    merged["X-Agent-Id"] = agent_id
    return {"base_url": base, "api_key": key, "default_headers": merged}


def wrap_openai(
    client: Any = None,
    *,
    agent_id: str,
    gateway_url: Optional[str] = None,
    api_key: Optional[str] = None,
    **client_kwargs: Any,
) -> Any:
    """Returns an `openai.OpenAI` (or, given one, a copy of an `OpenAI` / `AsyncOpenAI`
    client with its other options and headers kept) that sends every call through the
    gateway."""
    opts = gateway_options(agent_id, gateway_url=gateway_url, api_key=api_key)
    if client is not None:
        # `with_options` merges `default_headers` into the client's own.
        return client.with_options(**opts, **client_kwargs)
    import openai  # optional dependency: only this function needs it

    return openai.OpenAI(**opts, **client_kwargs)
