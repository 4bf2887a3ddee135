"""Drives the gateway with the real `openai` Python client (run by tests/gateway.rs).

Prints one JSON object with what the client saw; the Rust test checks it.
"""
import json
import os

import openai


def client(agent):
    return openai.OpenAI(
        base_url=os.environ["GW_BASE_URL"],
        api_key=os.environ["GW_KEY"],
        default_headers={"X-Agent-Id": agent},
        max_retries=0,
    )


def main():
    c = client("py-agent")
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]
    out = {}
    r = c.chat.completions.create(model="fake-model", messages=messages)
    out["buffered"] = {
        "usage": r.usage.model_dump(exclude_none=True),
        "tool_calls": len(r.choices[0].message.tool_calls or []),
    }
    chunks = list(c.chat.completions.create(model="fake-model", messages=messages, stream=True))
    out["stream"] = {
        "chunks": len(chunks),
        "usage_chunk": any(ch.usage is not None for ch in chunks),
        "content": "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices),
    }
    asked = c.chat.completions.create(
        model="fake-model", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    out["stream_usage"] = [ch.usage.prompt_tokens for ch in asked if ch.usage is not None]
    out["models"] = [m.id for m in c.models.list()]
    try:
        c.chat.completions.create(model="fake-error", messages=messages)
    except openai.InternalServerError as e:
        out["upstream_error"] = e.status_code
    try:
        client("q").chat.completions.create(model="fake-model", messages=messages)
    except openai.PermissionDeniedError as e:
        out["quarantined"] = {"status": e.status_code, "code": e.code, "message": e.message}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
