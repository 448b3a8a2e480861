"""Errors the hub answers over HTTP, shaped the way huggingface_hub turns them into exceptions.

The client reads the status, the ``X-Error-Code`` header (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``) and the message from ``X-Error-Message`` or the JSON body ``{"error": ...}``; each
helper below sets exactly what the client needs to raise its usual exception.
"""

from __future__ import annotations


class HubError(Exception):
    """An HTTP error answer: status, message, optional ``X-Error-Code`` and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


def bad_request(message: str) -> HubError:
    return HubError(400, message)


def unauthorized(message: str = "Invalid credentials in Authorization header") -> HubError:
    # This exact message keeps huggingface_hub from mistaking the 401 for a missing repository.
    return HubError(401, message)


def forbidden(message: str) -> HubError:
    return HubError(403, message)


def repo_not_found(repo_id: str) -> HubError:
    return HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")


def revision_not_found(revision: str, commit: str | None = None) -> HubError:
    return HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def entry_not_found(path: str, commit: str | None = None, message: str | None = None) -> HubError:
    headers = {"X-Repo-Commit": commit} if commit else {}
    return HubError(404, message or f"Entry not found: {path}", "EntryNotFound", headers)


def conflict(message: str) -> HubError:
    return HubError(409, message)


def precondition_failed(message: str = "A commit has happened since. Please refresh and try again.") -> HubError:
    return HubError(412, message)


class UserError(Exception):
    """A problem the operator can fix (a bad flag, an unreadable token file, a storage in use): ``str(error)`` is
    the one line ``reasoner-hub`` prints before it exits with code 2, never a traceback."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
