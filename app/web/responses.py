"""How every refusal looks: a Japanese message as JSON under /api/ (or when JSON is asked for), as the
error page otherwise. Shared by the error handlers (app/web/setup.py) and admission control, which answers
before the app runs (app/web/admission.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.web.templates import render

STATUS_MESSAGES = {
    400: "リクエストの形式が正しくありません。",
    401: "認証が必要です。",
    403: "この操作は許可されていません。ページを読み込み直してから、もう一度お試しください。",
    404: "お探しのページが見つかりません。",
    405: "この操作はできません。",
    413: "送信された内容が大きすぎます。",
    429: "短時間に多くの操作がありました。しばらく待ってからもう一度お試しください。",
    500: "システムで問題が発生しました。時間をおいてもう一度お試しください。",
    503: "ただいま混み合っています。時間をおいてもう一度お試しください。",
}


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def error_response(request: Request, status: int, message: str, extra: dict | None = None) -> Response:
    if wants_json(request):
        body = {"error": {"status": status, "message": message, **(extra or {})}}
        return JSONResponse(body, status_code=status)
    return render(request, "error.html", {"status": status, "message": message}, status_code=status)
