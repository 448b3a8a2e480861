"""The run's own hosts bypass any HTTP proxy of the environment (``NO_PROXY`` and ``no_proxy``).

Clusters often set ``http_proxy``/``https_proxy`` in every job so that jobs reach the internet. TRL's client of the
generation server uses ``requests`` (trl/generation/vllm_client.py), which sends a request for an address that
``no_proxy`` does not name to the proxy; a proxy that cannot reach a compute node answers 502, and TRL's
``check_server`` retries a non-200 answer without end, while the other ranks wait in their first collective until
the process-group timeout. So every launcher path (``reasoner launch-env`` for both scripts, and ``reasoner train``
in server mode) adds the server's, the rendezvous' and the nodes' addresses to both spellings, keeping what the user
had there first. ``requests``, ``httpx`` and ``urllib`` read the variables at each request; ``requests`` and
``urllib`` prefer the lower-case one, so both must carry the same list.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, MutableMapping

NO_PROXY_NAMES = ("NO_PROXY", "no_proxy")
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _entries(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def no_proxy_env(env: Mapping[str, str], hosts: Iterable[str | None]) -> dict[str, str]:
    """``NO_PROXY`` and ``no_proxy`` with ``hosts`` and the loopback names added to what ``env`` has.

    The user's entries come first, in their order, from the lower-case spelling then the upper-case one (the
    order ``requests`` reads them); each entry appears once. A ``*`` already there bypasses every host: kept as is.
    """
    merged: list[str] = []
    for entry in [*_entries(env.get("no_proxy")), *_entries(env.get("NO_PROXY")), *LOOPBACK,
                  *(str(host).strip() for host in hosts if host)]:
        if entry and entry not in merged:
            merged.append(entry)
    value = ",".join(merged)
    return {name: value for name in NO_PROXY_NAMES}


def bypass_proxy_for(hosts: Iterable[str | None], env: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Add ``hosts`` to this process's (or ``env``'s) ``NO_PROXY``/``no_proxy``; returns the new values."""
    target = os.environ if env is None else env
    values = no_proxy_env(target, hosts)
    target.update(values)
    return values
