"""Vitals reported in batches: buffered, sent by size or age, kept through failures."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from typing import Any, Callable, Deque, Dict, Optional

from .client import AntibodyError, Client


class VitalsBatcher:
    """Buffers `vitals` events and sends them in batches of `max_batch`.

    `flush()` sends what is buffered (the client retries with backoff); a batch that still
    fails stays buffered for the next flush, oldest events dropped first past `max_buffer`
    (counted in `dropped`). Every event gets an id, so a batch retried after a lost answer is
    counted once by the server. `start()` flushes from a background thread every
    `interval_s` (then `report` never blocks on the network); `close()` (or leaving a `with`
    block) flushes what is left and raises if that fails.
    """

    def __init__(
        self,
        client: Client,
        *,
        max_batch: int = 500,
        max_buffer: int = 10_000,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.max_batch = max_batch
        self.max_buffer = max_buffer
        self.interval_s = interval_s
        self.dropped = 0
        self._clock = clock
        self._buffer: Deque[Dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def report(
        self,
        agent: str,
        metrics: Dict[str, float],
        attrs: Optional[Dict[str, Any]] = None,
        *,
        ts_ms: Optional[int] = None,
        id: Optional[str] = None,
    ) -> None:
        """One task's vitals for agent `agent` (entity `agent:<agent>`)."""
        event = {
            "entity": agent if agent.startswith("agent:") else "agent:" + agent,
            "kind": "vitals",
            "ts": ts_ms if ts_ms is not None else int(self._clock() * 1000),
            "metrics": metrics,
            "attrs": attrs or {},
            "id": id or str(uuid.uuid4()),
        }
        with self._lock:
            self._buffer.append(event)
            while len(self._buffer) > self.max_buffer:
                self._buffer.popleft()
                self.dropped += 1
        # Without the background thread a full batch goes out now; a failure keeps it
        # buffered for the next flush rather than failing the agent's task.
        if self._thread is None and len(self._buffer) >= self.max_batch:
            try:
                self.flush()
            except AntibodyError:
                pass

    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Sends the buffer in batches; returns the events the server accepted (duplicates
        included). Raises the last error when a batch could not be sent; it stays buffered."""
        sent = 0
        with self._flushing:
            while True:
                with self._lock:
                    batch = [self._buffer[i] for i in range(min(self.max_batch, len(self._buffer)))]
                if not batch:
                    return sent
                try:
                    answer = self.client.send_events(batch)
                except AntibodyError as e:
                    if e.status is not None and e.status < 500 and e.status != 429:
                        # Refused as a whole (bad key, malformed): retrying cannot help.
                        self._drop(len(batch))
                    raise
                self._drop(len(batch))
                sent += answer.get("accepted", 0) + answer.get("duplicates", 0)

    def _drop(self, n: int) -> None:
        with self._lock:
            for _ in range(min(n, len(self._buffer))):
                self._buffer.popleft()

    def start(self) -> "VitalsBatcher":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="antibody-vitals", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.flush()
            except AntibodyError:
                pass  # kept buffered; the next round retries

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def __enter__(self) -> "VitalsBatcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
