"""``git-upload-pack`` over stateless HTTP: the ref advertisement and the fetch, in protocol v2
(``ls-refs``, ``fetch`` with ``shallow``/``deepen``, what git >= 2.26 uses by default) and in
protocol v0 (``multi_ack_detailed``, ``no-done``, ``side-band-64k``; no shallow clones).

Each request stands alone (smart HTTP is stateless): the client repeats its wants and the haves
found in common, and the answer is computed from one snapshot of the repo's refs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from reasoner_hub import errors
from reasoner_hub.git.pack import write_pack
from reasoner_hub.git.pktline import DELIM, FLUSH, pkt, sideband_stream
from reasoner_hub.git.snapshot import Snapshot, common_commits, include, pack_objects, select
from reasoner_hub.paths import Repo
from reasoner_hub.repos import RepoStore

AGENT = "agent=reasoner-localhub"
ZERO_ID = "0" * 40
V0_CAPABILITIES = f"multi_ack_detailed no-done side-band-64k object-format=sha1 {AGENT}"
V2_CAPABILITIES = ["version 2", AGENT, "ls-refs", "fetch=shallow", "object-format=sha1"]
_OID = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class FetchArgs:
    """The arguments of a fetch, in either protocol version."""

    wants: list[str] = field(default_factory=list)
    haves: list[str] = field(default_factory=list)
    done: bool = False
    depth: int | None = None
    shallow: set[str] = field(default_factory=set)  # the client's shallow commits
    capabilities: set[str] = field(default_factory=set)


def _oid(value: str, what: str) -> str:
    if not _OID.fullmatch(value):
        raise errors.bad_request(f"upload-pack: invalid object id in {what}")
    return value


def _fetch_args(lines: list[str]) -> FetchArgs:
    args = FetchArgs()
    for line in lines:
        word, _, rest = line.partition(" ")
        if word == "want":
            oid, _, capabilities = rest.partition(" ")
            args.wants.append(_oid(oid, "want"))
            args.capabilities.update(capabilities.split())
        elif word == "have":
            args.haves.append(_oid(rest, "have"))
        elif word == "done":
            args.done = True
        elif word == "shallow":
            args.shallow.add(_oid(rest, "shallow"))
        elif word == "deepen":
            if not rest.isdigit() or int(rest) < 1:
                raise errors.bad_request("upload-pack: deepen needs a positive depth")
            args.depth = int(rest)
        elif word in ("deepen-since", "deepen-not", "deepen-relative", "filter"):
            raise errors.bad_request(f"upload-pack: {word} is not supported by this hub; clone with --depth N or whole")
    if not args.wants:
        raise errors.bad_request("upload-pack: a fetch needs at least one want")
    return args


def _check_wants(store: RepoStore, repo: Repo, view: Snapshot, wants: list[str]) -> None:
    for want in wants:
        if want not in view.commits and not include(store, repo, view, want):
            raise errors.bad_request(f"upload-pack: not our ref {want}")


def _pack(store: RepoStore, repo: Repo, view: Snapshot, args: FetchArgs, common: list[str]) -> Iterator[bytes]:
    """The pack as a stream; the objects are chosen now, so a bad request fails before any byte."""
    chosen = select(view, args.wants, common, args.depth, args.shallow)
    return write_pack(pack_objects(store, repo, view, chosen))


def _then(head: bytes, *streams: Iterator[bytes] | bytes) -> Iterator[bytes]:
    yield head
    for stream in streams:
        if isinstance(stream, bytes):
            yield stream
        else:
            yield from stream


# -- protocol v2 -----------------------------------------------------------------------------------
def capabilities_v2() -> bytes:
    return b"".join(pkt(line + "\n") for line in V2_CAPABILITIES) + FLUSH


def ls_refs(view: Snapshot, args: list[str]) -> bytes:
    prefixes = [a[len("ref-prefix ") :] for a in args if a.startswith("ref-prefix ")]
    symrefs = "symrefs" in args
    out = []
    for name, oid in view.refs:
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        line = f"{oid} {name}"
        if symrefs and name == "HEAD" and view.head:
            line += f" symref-target:{view.head}"
        out.append(pkt(line + "\n"))
    return b"".join(out) + FLUSH


def fetch_v2(store: RepoStore, repo: Repo, view: Snapshot, lines: list[str]) -> Iterator[bytes]:
    """The answer to ``command=fetch``: acknowledgments until ready, then shallow-info and the pack."""
    args = _fetch_args(lines)
    _check_wants(store, repo, view, args.wants)
    common = common_commits(view, args.haves)
    head = b""
    if not args.done:
        acks = [pkt(f"ACK {oid}\n") for oid in common] or [pkt("NAK\n")]
        if not common:  # not ready: the client sends more haves, or done
            return iter([pkt("acknowledgments\n") + b"".join(acks) + FLUSH])
        head += pkt("acknowledgments\n") + b"".join(acks) + pkt("ready\n") + DELIM
    if args.depth is not None or args.shallow:
        chosen = select(view, args.wants, common, args.depth, args.shallow)
        lines = [f"shallow {oid}\n" for oid in chosen.shallow] + [f"unshallow {oid}\n" for oid in chosen.unshallow]
        head += pkt("shallow-info\n") + b"".join(pkt(line) for line in lines) + DELIM
    pack = _pack(store, repo, view, args, common)
    return _then(head + pkt("packfile\n"), sideband_stream(pack), FLUSH)


# -- protocol v0 -----------------------------------------------------------------------------------
def advertise_v0(view: Snapshot) -> bytes:
    capabilities = V0_CAPABILITIES + (f" symref=HEAD:{view.head}" if view.head else "")
    if not view.refs:
        return pkt(f"{ZERO_ID} capabilities^{{}}\0{capabilities}\n") + FLUSH
    lines = [pkt(f"{view.refs[0][1]} {view.refs[0][0]}\0{capabilities}\n")]
    lines += [pkt(f"{oid} {name}\n") for name, oid in view.refs[1:]]
    return b"".join(lines) + FLUSH


def fetch_v0(store: RepoStore, repo: Repo, view: Snapshot, lines: list[str]) -> Iterator[bytes]:
    """Negotiation as upload-pack does it with ``multi_ack_detailed`` and ``no-done``, then the pack."""
    args = _fetch_args(lines)
    if args.depth is not None or args.shallow:
        raise errors.bad_request("upload-pack: shallow clones need protocol v2 (git config protocol.version 2)")
    _check_wants(store, repo, view, args.wants)
    detailed = "multi_ack_detailed" in args.capabilities
    common = common_commits(view, args.haves)
    answer = [pkt(f"ACK {oid} common\n") for oid in common] if detailed else [pkt(f"ACK {oid}\n") for oid in common[:1]]
    if not args.done:
        ready = bool(common) and detailed
        if ready:
            answer.append(pkt(f"ACK {common[-1]} ready\n"))
        answer.append(pkt("NAK\n"))
        if not (ready and "no-done" in args.capabilities):
            return iter([b"".join(answer)])
        answer.append(pkt(f"ACK {common[-1]}\n"))
    else:
        answer.append(pkt(f"ACK {common[-1]}\n") if common else pkt("NAK\n"))
    pack = _pack(store, repo, view, args, common)
    if "side-band-64k" in args.capabilities or "side-band" in args.capabilities:
        return _then(b"".join(answer), sideband_stream(pack), FLUSH)
    return _then(b"".join(answer), pack)

