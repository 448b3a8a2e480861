"""Request counters (served at ``GET /api/_metrics``) and the JSONL request log.

Tests and benchmarks use them to prove who talked to the hub and how much: every request is
counted by route kind (download / upload / api), by repo, by client (the ``X-Reasoner-Client``
header, else the remote address) and by user agent. The log never holds the Authorization header
nor query strings (an LFS upload URL carries a signature in its query). Processes that cannot add
a header (e.g. libraries calling huggingface_hub for you) are named by ``HF_HUB_USER_AGENT_ORIGIN``.

Memory is bounded whatever clients send: a key (user agent, client name, repo) is cut to
``MAX_KEY_CHARS``, and each grouping keeps at most ``MAX_KEYS`` distinct keys; requests of further
keys are counted under ``OTHER``. The request log cuts the user agent the same way.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

MAX_KEYS = 1000  # distinct keys per grouping (by_user_agent, by_client, by_repo, ...)
MAX_KEY_CHARS = 256
OTHER = "(other)"
CLIENT_HEADER = "X-Reasoner-Client"
PID_HEADER = "X-Reasoner-Pid"
_ORIGIN = re.compile(r"(?:^|;)\s*origin/([^;]+)")


def client_of(headers, remote: str) -> str:
    """Who is asking: the X-Reasoner-Client header, else the ``origin/NAME`` huggingface_hub adds to its
    user agent when ``HF_HUB_USER_AGENT_ORIGIN=NAME`` is set in the client process, else the address."""
    named = headers.get(CLIENT_HEADER)
    if named:
        return named.strip()
    match = _ORIGIN.search(headers.get("User-Agent") or "")
    return match.group(1).strip() if match else remote


def agent_fields(user_agent: str) -> dict[str, str]:
    """The ``name/value`` parts of a user agent; reasoner's own clients add ``node``, ``pid`` and ``rank``."""
    fields: dict[str, str] = {}
    for part in user_agent.split(";"):
        name, slash, value = part.strip().partition("/")
        if slash:
            fields[name] = value
    return fields


def pid_of(headers) -> str | None:
    """The asking process's id: the X-Reasoner-Pid header, else the ``pid/N`` reasoner's clients put in their
    user agent. An LFS upload URL carries it on to the PUT, which has no headers of its own."""
    named = headers.get(PID_HEADER)
    if named:
        return named.strip()
    pid = agent_fields(headers.get("User-Agent") or "").get("pid", "")
    return pid if pid.isdigit() else None


@dataclass
class RequestRecord:
    time: str
    method: str
    path: str
    kind: str
    repo: str | None
    revision: str | None
    status: int
    bytes_sent: int
    bytes_received: int
    client: str
    user_agent: str
    pid: str | None
    duration_ms: float


def _bucket() -> dict[str, int]:
    return {"requests": 0, "bytes_sent": 0, "bytes_received": 0}


class Metrics:
    def __init__(self, log_path: str | None = None) -> None:
        self._lock = threading.Lock()
        self._started = datetime.now(timezone.utc).isoformat()
        self._total = _bucket()
        self._groups: dict[str, dict[str, dict[str, int]]] = {
            name: defaultdict(_bucket) for name in ("by_kind", "by_repo", "by_client", "by_user_agent", "by_status")
        }
        self._log = open(log_path, "a", buffering=1, encoding="utf-8") if log_path else None  # noqa: SIM115

    def _group(self, name: str, key: str) -> dict[str, int]:
        groups = self._groups[name]
        key = key[:MAX_KEY_CHARS]
        if key not in groups and len(groups) >= MAX_KEYS:
            key = OTHER
        return groups[key]

    def record(self, record: RequestRecord) -> None:
        record.user_agent = record.user_agent[:MAX_KEY_CHARS]
        record.client = record.client[:MAX_KEY_CHARS]
        keys = {
            "by_kind": record.kind,
            "by_repo": record.repo,
            "by_client": record.client,
            "by_user_agent": record.user_agent,
            "by_status": str(record.status),
        }
        with self._lock:
            for bucket in [self._total] + [self._group(g, k) for g, k in keys.items() if k]:
                bucket["requests"] += 1
                bucket["bytes_sent"] += record.bytes_sent
                bucket["bytes_received"] += record.bytes_received
            if self._log is not None:
                self._log.write(json.dumps(asdict(record)) + "\n")

    def snapshot(self) -> dict:
        with self._lock:
            out = {"since": self._started, **self._total}
            for name, groups in self._groups.items():
                out[name] = {key: dict(value) for key, value in sorted(groups.items())}
            return out

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None
