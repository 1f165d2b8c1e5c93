"""Domain errors: refusals a person can act on, raised by domain code (registry, intake, payouts, staff
accounts) without knowing about HTTP. Each carries a Japanese `message` for the person at the screen and
never a resident's personal data. The web layer (app/web/setup.py) maps the class to a status; the CLI
prints the message.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base: a request the person can correct, or one the rules refuse."""

    default_message = "この操作はできません。"

    def __init__(self, message: str | None = None):
        self.message = message or self.default_message
        super().__init__(self.message)


class NotFound(DomainError):
    """The object does not exist in the caller's municipality (another municipality's looks the same)."""

    default_message = "指定されたものは見つかりません。"


class Forbidden(DomainError):
    """The caller's roles do not allow this action."""

    default_message = "この操作は許可されていません。"


class Conflict(DomainError):
    """The object is not in a state that allows the action (already approved, changed since viewed...)."""


class InvalidInput(DomainError):
    """A value is missing or malformed; the message names the field. `field_errors` (form field → its
    message), where given, lets a form show each message at its field."""

    default_message = "入力内容を確認してください。"

    def __init__(self, message: str | None = None, *, field_errors: dict[str, str] | None = None):
        super().__init__(message)
        self.field_errors = field_errors or {}


class Unauthenticated(DomainError):
    """The caller could not be identified (wrong credentials, an expired sign-in)."""

    default_message = "認証が必要です。"


class RateLimited(DomainError):
    """Too many failures from this address or for this object lately; try again after `retry_after_s`."""

    default_message = "短時間に多くの失敗がありました。しばらく待ってからもう一度お試しください。"

    def __init__(self, retry_after_s: int, message: str | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UsageError(Exception):
    """A mistake the operator can fix at the command line; `kyufu` prints it as one line and exits 2."""
