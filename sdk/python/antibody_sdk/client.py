"""The HTTP client: events with retry and backoff, verdict lookups."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

# Statuses worth a retry: overloaded (429, with Retry-After) and a server or proxy that is
# not there yet (502, 503, 504). Everything else is an answer.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class AntibodyError(Exception):
    """An error answer (`{"error": {"code", "message"}}`) or a server that never answered."""

    def __init__(self, status: Optional[int], code: str, message: str):
        super().__init__(f"{status or 'no answer'} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter, capped; `Retry-After` wins when the server sends it."""

    attempts: int = 5
    base_s: float = 0.5
    max_s: float = 30.0
    jitter: Callable[[float], float] = field(default=lambda cap: random.uniform(0, cap))

    def delay(self, attempt: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_s)
        return self.jitter(min(self.max_s, self.base_s * (2 ** attempt)))


@dataclass
class Verdict:
    """`GET /v1/entities/{entity}/verdict`."""

    verdict: str
    until: Optional[str] = None
    incident: Optional[str] = None
    rate: Optional[Dict[str, Any]] = None
    revoked_tools: List[str] = field(default_factory=list)
    budget: Optional[Dict[str, Any]] = None

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"

    @property
    def blocked(self) -> bool:
        """Quarantined or blocked: the agent must not go on."""
        return self.verdict in ("block", "quarantine")

    def tool_allowed(self, tool: str) -> bool:
        return "*" not in self.revoked_tools and tool not in self.revoked_tools


class Client:
    """One antibody server and one key. `sleep` is injectable so tests need no real waits."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 10.0,
        retry: Optional[RetryPolicy] = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    def send_events(self, events: List[Dict[str, Any]]) -> Dict[str, Any]:
        """POST /v1/events; returns `{"accepted", "duplicates", "rejected"}`. Give each event
        an `id` so a retry after a lost answer counts it once."""
        return self._request("POST", "/v1/events", events)

    def verdict(self, entity: str) -> Verdict:
        path = "/v1/entities/" + urllib.parse.quote(entity, safe="") + "/verdict"
        v = self._request("GET", path, None)
        return Verdict(
            verdict=v.get("verdict", "allow"),
            until=v.get("until"),
            incident=v.get("incident"),
            rate=v.get("rate"),
            revoked_tools=list(v.get("revoked_tools") or []),
            budget=v.get("budget"),
        )

    def _request(self, method: str, path: str, body: Any) -> Dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        last: Optional[AntibodyError] = None
        for attempt in range(max(1, self.retry.attempts)):
            if attempt:
                self._sleep(self.retry.delay(attempt - 1, last_retry_after))
            last_retry_after = None
            req = urllib.request.Request(self.base_url + path, data=data, method=method)
            req.add_header("Authorization", "Bearer " + self.api_key)
            if data is not None:
                req.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                    return json.loads(raw) if raw else {}
            except urllib.error.HTTPError as e:
                last = _error_of(e)
                if e.code not in RETRY_STATUSES:
                    raise last from None
                last_retry_after = _retry_after(e.headers.get("Retry-After"))
            except (urllib.error.URLError, OSError) as e:
                last = AntibodyError(None, "unreachable", str(getattr(e, "reason", e)))
        assert last is not None
        raise last


def _error_of(e: urllib.error.HTTPError) -> AntibodyError:
    try:
        err = json.loads(e.read() or b"{}").get("error", {})
        return AntibodyError(e.code, err.get("code", "unknown"), err.get("message", ""))
    except (ValueError, AttributeError):
        return AntibodyError(e.code, "unknown", e.reason or "")


def _retry_after(value: Optional[str]) -> Optional[float]:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
