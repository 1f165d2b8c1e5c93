"""The staff console's errors: the core domain errors (app/errors.py), plus the two the console adds."""

from __future__ import annotations

from app.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unauthenticated

# The console's code catches this name for "any refusal" (e.g. the CLI prints its message).
StaffError = DomainError


class LastAdmin(Conflict):
    """A role change would leave the municipality without an enabled admin (nobody could manage staff)."""

    def __init__(self) -> None:
        super().__init__(
            "この職員は最後の管理者のため、管理者の権限を外せません。先に別の職員に管理者の権限を付与してください。"
        )


class LoginFailed(Unauthenticated):
    """Wrong municipality, login, password or TOTP code; deliberately one message for all of them."""

    default_message = "ログインできませんでした。入力内容を確認してください。"


__all__ = [
    "Conflict",
    "DomainError",
    "Forbidden",
    "InvalidInput",
    "LastAdmin",
    "LoginFailed",
    "NotFound",
    "StaffError",
    "Unauthenticated",
]
