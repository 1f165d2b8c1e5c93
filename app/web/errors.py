"""Errors a handler raises to answer with a status and a Japanese message (rendered by app/web/setup.py)."""

from __future__ import annotations


class WebError(Exception):
    """An expected refusal: `message` is shown to the user as is, so it never contains personal data."""

    status = 400

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        extra: dict | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.extra = extra or {}
        self.headers = headers or {}


class CsrfError(WebError):
    """A form arrived without the token of the session that rendered it (stale page or forgery)."""

    status = 403

    def __init__(self) -> None:
        super().__init__("ページの有効期限が切れました。もう一度ページを開いてから送信してください。")


class TooManyRequests(WebError):
    status = 429

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "短時間に多くの失敗がありました。しばらく待ってからもう一度お試しください。",
            headers={"Retry-After": str(retry_after_s)},
        )
