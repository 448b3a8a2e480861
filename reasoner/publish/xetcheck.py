"""Before a run pushes: will its uploads go through Xet, and does the hub offer Xet?

huggingface_hub 2.x uploads through Xet whenever ``hf_xet`` is installed (it is, by default) unless
``HF_HUB_DISABLE_XET=1`` is set, and it has no LFS fallback. huggingface.co and ``reasoner hub serve``
offer Xet, so reasoner leaves the default alone. A private hub that speaks only LFS answers 404 on the
Xet token route, and the first push of a run would fail after the training it was meant to keep; so
the push preflight asks that route once and, on such a hub, stops with one line naming the fix.
"""

from __future__ import annotations

from urllib.parse import quote

from reasoner.errors import UserError

# What a hub without the Xet routes answers; a 404 that says the repo is missing is another problem.
NO_XET_STATUSES = (404, 405, 501)


def uploads_use_xet() -> bool:
    """Whether huggingface_hub in this process would upload through Xet."""
    from huggingface_hub.utils._runtime import is_xet_available

    return is_xet_available()


def check_xet_uploads(repo_id: str, repo_type: str = "model", revision: str = "main") -> None:
    """UserError when uploads would use Xet but the hub has no Xet token route for ``repo_id``.

    A missing repo cannot be told apart from a hub without Xet (both answer 404), so the check is
    meaningful once the repo exists. Callers in an offline job wrap it in ``push.hub_reachable``.
    """
    if not uploads_use_xet():
        return
    from huggingface_hub.utils import build_hf_headers, get_session

    from reasoner.hubclient.calls import client_agent, endpoint

    url = f"{endpoint()}/api/{repo_type}s/{repo_id}/xet-write-token/{quote(revision, safe='')}"
    try:
        response = get_session().get(url, headers=build_hf_headers(user_agent=client_agent()), timeout=30)
    except Exception as exc:  # noqa: BLE001 - network errors of any client layer
        raise UserError(f"cannot reach the hub at {endpoint()} to check its upload protocol: {exc}") from None
    if response.status_code in NO_XET_STATUSES and response.headers.get("X-Error-Code") != "RepoNotFound":
        raise UserError(
            f"the hub at {endpoint()} does not offer Xet uploads ({response.status_code} on its xet-write-token "
            f"route) and huggingface_hub uploads through Xet by default: export HF_HUB_DISABLE_XET=1 so that "
            f"uploads use LFS, or pass --hub.push false"
        )
