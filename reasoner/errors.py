"""User-facing errors.

Anything a user can fix (a bad recipe key, an unreachable hub, a rejected token) is raised as a
``UserError``. The CLI prints its message as a single line and exits with code 2, never a traceback,
so the message itself must name the problem and the fix.
"""

from __future__ import annotations

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem the user can fix; ``str(error)`` is the one-line message shown to them."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
