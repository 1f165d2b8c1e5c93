"""The staff console's domain errors. Each carries a Japanese message for the person at the screen and
never a resident's personal data."""

from __future__ import annotations

from app.web.errors import WebError


class StaffError(WebError):
    """Base: a request the staff member can correct or that the rules refuse. HTTP status in `status`;
    rendered by the shared handler of app/web/setup.py."""

    status = 400


class NotFound(StaffError):
    """The object does not exist in the staff member's municipality (another municipality's looks the same)."""

    status = 404

    def __init__(self, message: str = "指定されたものは見つかりません。"):
        super().__init__(message)


class Forbidden(StaffError):
    """The staff member's roles do not allow this action."""

    status = 403


class Conflict(StaffError):
    """The object is not in a state that allows the action (already approved, changed since viewed...)."""

    status = 409


class LastAdmin(Conflict):
    """A role change would leave the municipality without an enabled admin (nobody could manage staff)."""

    def __init__(self) -> None:
        super().__init__("この職員は最後の管理者のため、管理者の権限を外せません。"
                         "先に別の職員に管理者の権限を付与してください。")


class InvalidInput(StaffError):
    """A form value is missing or malformed; the message names the field."""

    status = 422


class LoginFailed(StaffError):
    """Wrong municipality, login, password or TOTP code; deliberately one message for all of them."""

    status = 401

    def __init__(self, message: str = "ログインできませんでした。入力内容を確認してください。"):
        super().__init__(message)
