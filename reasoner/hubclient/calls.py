"""The client side of the hub: preflight, pinning to commits, and node-local snapshots.

Every call goes through ``huggingface_hub``, so ``HF_ENDPOINT`` and ``HF_TOKEN`` choose the hub exactly as they
do for the rest of the Hugging Face stack. Three jobs live here:

* preflight: before any GPU spins up, the endpoint answers, the token is accepted and the model and data set
  exist; each failure becomes a one-line ``UserError`` naming the endpoint and the repo;
* pinning: ``model@revision`` and ``dataset@revision`` resolve to commit hashes that the whole run then uses,
  so a push to ``main`` during the run cannot give two nodes different weights;
* snapshots: one process per node downloads the pinned commits into ``HF_HUB_CACHE``; everything after that
  reads the cache with ``local_files_only`` and makes no request at all.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Callable, Literal, TypeVar

from reasoner.errors import UserError

RepoType = Literal["model", "dataset"]
T = TypeVar("T")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# Files a training or evaluation run never needs from a model repo: other frameworks' weights and the
# resumable training state that reasoner itself pushes beside the model.
MODEL_IGNORE_PATTERNS = ["last-checkpoint/*", "checkpoint-*/*", "*.gguf", "*.onnx", "*.msgpack", "*.h5", "*.ot", "*.tflite"]
# Set in an uploader child's environment (reasoner.publish.uploader): the training process it pushes for, which
# client_agent reports so a hub's request log ties the child's pushes to that process.
PARENT_ENV = "REASONER_UPLOADER_PARENT"


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def endpoint_host() -> str:
    return endpoint().split("://", 1)[-1].split("/", 1)[0]


def client_agent() -> dict[str, str]:
    """What this process adds to its user agent, so a hub's request log says who asked.

    On a cluster the question "which node downloaded this, which rank pushed that" is otherwise unanswerable
    (every rank shares one user agent, and nodes may sit behind one address). The node is SLURM's node name
    when there is one, because several SLURM nodes may share a host.
    """
    import socket

    from reasoner import __version__

    agent = {"reasoner": __version__,
             "node": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
             "pid": str(os.getpid())}
    rank = os.environ.get("RANK")
    if rank is not None:
        agent["rank"] = rank
    parent = os.environ.get(PARENT_ENV)
    if parent:
        agent["parent"] = parent  # a training process's uploader child: its pushes are that process's
    return agent


def api() -> Any:
    """An ``HfApi`` whose requests carry :func:`client_agent` (HF_ENDPOINT and HF_TOKEN apply as usual)."""
    from huggingface_hub import HfApi

    return HfApi(user_agent=client_agent())


def is_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def is_commit(revision: str | None) -> bool:
    return bool(revision and COMMIT_RE.match(revision))


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _is_network_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"TransportError", "ConnectError", "ConnectTimeout", "ReadTimeout", "NetworkError",
                         "ConnectionError", "TimeoutException"})


def describe_hub_error(exc: BaseException, repo_id: str, repo_type: RepoType, revision: str | None, action: str) -> UserError | None:
    """Turn a hub client exception into the one-line error a user can act on (None: not a hub problem)."""
    from huggingface_hub import errors

    ep = endpoint()
    what = f"{repo_type} '{repo_id}'"
    if _is_network_error(exc):
        return UserError(f"hub {ep} is unreachable while {action} {what} ({type(exc).__name__}): start the hub or fix HF_ENDPOINT")
    status = _status(exc)
    if isinstance(exc, errors.RevisionNotFoundError):
        return UserError(f"revision '{revision}' of {what} not found at {ep}: check the {repo_type}.revision key")
    if status == 401:
        return UserError(f"hub {ep} rejected the token (401) while {action} {what}: set a valid HF_TOKEN")
    if status == 403:
        return UserError(f"the token may not do this at {ep} (403) while {action} {what}: use a token with write access for pushes, or ask for access")
    if isinstance(exc, (errors.RepositoryNotFoundError, errors.GatedRepoError)) or status == 404:
        return UserError(f"{what} not found at {ep} (404): check the repo id, or set HF_TOKEN if it is private")
    if isinstance(exc, errors.HfHubHTTPError):
        return UserError(f"hub {ep} answered {status} while {action} {what}: {str(exc).splitlines()[0]}")
    return None


def hub_call(fn: Callable[[], T], repo_id: str, repo_type: RepoType, revision: str | None, action: str) -> T:
    """Run one hub call; known failures become one-line UserErrors."""
    try:
        return fn()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below, re-raised when unknown
        friendly = describe_hub_error(exc, repo_id, repo_type, revision, action)
        if friendly is None:
            raise
        raise friendly from None


def resolve_commit(repo_id: str, repo_type: RepoType, revision: str | None) -> str:
    """Preflight one repo and pin ``revision`` (branch, tag or commit) to a commit hash."""
    client = api()
    info = hub_call(lambda: client.repo_info(repo_id, repo_type=repo_type, revision=revision or "main"),
                    repo_id, repo_type, revision, "resolving")
    if not info.sha:
        raise UserError(f"hub {endpoint()} gave no commit for {repo_type} '{repo_id}@{revision}': the hub is not HF-compatible")
    return info.sha


def check_token() -> str | None:
    """Fail early on a rejected token; return the user name when a token is set."""
    from huggingface_hub import get_token

    if not get_token():
        return None
    try:
        info = api().whoami()
    except Exception as exc:  # noqa: BLE001 - classified below, re-raised when unknown
        ep = endpoint()
        if _is_network_error(exc):
            raise UserError(f"hub {ep} is unreachable ({type(exc).__name__}): start the hub or fix HF_ENDPOINT") from None
        if _status(exc) == 401:
            raise UserError(f"hub {ep} rejected the token (401): set a valid HF_TOKEN") from None
        raise
    return info.get("name") if isinstance(info, dict) else None


def download_snapshot(repo_id: str, repo_type: RepoType, commit: str) -> Path:
    """Fetch one pinned commit into the node-local cache (``HF_HUB_CACHE``)."""
    from huggingface_hub import snapshot_download

    ignore = MODEL_IGNORE_PATTERNS if repo_type == "model" else None
    path = hub_call(lambda: snapshot_download(repo_id, repo_type=repo_type, revision=commit, ignore_patterns=ignore,
                                              user_agent=client_agent()),
                    repo_id, repo_type, commit, "downloading")
    return Path(path)


def cached_snapshot(repo_id: str, repo_type: RepoType, revision: str | None) -> Path:
    """The cached snapshot of a commit (or a branch, by the cache's refs) without any request."""
    from huggingface_hub import snapshot_download

    ignore = MODEL_IGNORE_PATTERNS if repo_type == "model" else None
    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision or "main",
                                      local_files_only=True, ignore_patterns=ignore))
    except Exception:  # noqa: BLE001 - every cache miss means the same thing to the user
        raise UserError(
            f"{repo_type} '{repo_id}@{revision}' is not in the local cache {cache_dir()}: run "
            f"'reasoner prefetch --recipe ...' on this node first, or unset HF_HUB_OFFLINE"
        ) from None


def cache_dir() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


@dataclasses.dataclass
class Source:
    """Where a model or data set comes from, and what the run pins it to."""

    kind: Literal["builtin", "local", "hub", "generated"]
    id: str
    revision: str | None = None
    commit: str | None = None
    path: Path | None = None

    @property
    def pinned(self) -> str | None:
        """The commit a hub source is pinned to; None for a source not from the hub, or not pinned yet."""
        return self.commit if self.kind == "hub" else None

    def describe(self) -> str:
        if self.kind == "hub":
            return f"{self.id}@{self.commit or self.revision}"
        return f"{self.id} ({self.kind})"


def classify_model(model_id: str, revision: str | None) -> Source:
    from reasoner.models.builtin import resolve_builtin_model

    builtin = resolve_builtin_model(model_id) if model_id in ("tiny", "smollm2") else None
    if builtin is not None:
        return Source("builtin", model_id, path=Path(builtin))
    if Path(model_id).expanduser().is_dir():
        return Source("local", model_id, path=Path(model_id).expanduser())
    return Source("hub", model_id, revision=revision)


def classify_dataset(dataset_id: str, revision: str | None) -> Source:
    if dataset_id == "generated":
        return Source("generated", dataset_id)
    if Path(dataset_id).expanduser().exists():
        return Source("local", dataset_id, path=Path(dataset_id).expanduser())
    return Source("hub", dataset_id, revision=revision)


def classify_recipe(recipe: Any) -> tuple[Source, list[Source]]:
    """A recipe's model and its task's data sets (the one data set, or each ``dataset.mix`` entry), in recipe order,
    as the sources every process pins and loads: the one reading of ``model.id``/``model.revision`` and the data
    sets' ids and revisions."""
    model = classify_model(recipe.model.id, recipe.model.revision)
    return model, [classify_dataset(source.id, source.revision) for source in recipe.task_sources]


def pinned_mix(mix: list[dict[str, Any]], sources: list[Source]) -> list[dict[str, Any]]:
    """``dataset.mix`` entries with each hub data set's revision replaced by the commit it is pinned to."""
    return [dict(entry, revision=source.pinned) if source.pinned else dict(entry) for entry, source in zip(mix, sources)]


def pin(source: Source, repo_type: RepoType) -> Source:
    """Resolve a hub source's revision to a commit (a request, unless offline or already a commit)."""
    if source.kind != "hub" or source.commit:
        return source
    if is_commit(source.revision):
        source.commit = source.revision
    elif not is_offline():
        source.commit = resolve_commit(source.id, repo_type, source.revision)
    return source


def materialize(source: Source, repo_type: RepoType, *, download: bool) -> Source:
    """Give a hub source its local path: download it (``download=True``) or read the cache only."""
    if source.kind != "hub":
        return source
    if download and not is_offline():
        source.path = download_snapshot(source.id, repo_type, source.commit or source.revision or "main")
    else:
        source.path = cached_snapshot(source.id, repo_type, source.commit or source.revision)
    return source


def pins_as_overrides(model: Source, dataset: Source | None) -> list[str]:
    """The command-line overrides that make every later process load exactly these commits."""
    overrides: list[str] = []
    if model.kind == "hub" and model.commit:
        overrides += ["--model.revision", model.commit]
    if dataset is not None and dataset.kind == "hub" and dataset.commit:
        overrides += ["--dataset.revision", dataset.commit]
    return overrides


def describe_env() -> dict[str, Any]:
    """What the model card records about the hub (never the token)."""
    return {"endpoint_host": endpoint_host(), "offline": is_offline(), "xet_disabled": os.environ.get("HF_HUB_DISABLE_XET") == "1"}
