"""Reading request bodies: a JSON object with a depth limit, and a form without files.

JSON: `json.loads` recurses once per nesting level, so 60 KB of `[` (well under the body limit) or an
object nested 10,000 deep ended in a RecursionError and a 500. The depth is now checked first by a linear
scan that does not recurse, and every other way a body can be unreadable (not UTF-8, not JSON, NaN or
Infinity, a number too large to be finite, a key given twice, not an object) is a 422 in the API's error
shape with a Japanese message naming the body.

Forms: no form of ours uploads a file, so a multipart body with a file part is refused (400) instead of
spooling it into a temporary file that no handler reads or closes.
"""

from __future__ import annotations

import json
import math

from starlette.datastructures import FormData
from starlette.requests import Request

from app.web.errors import WebError

# Our largest body (an application with its bank account) is three levels deep.
MAX_JSON_DEPTH = 32

_OPEN, _CLOSE = (0x5B, 0x7B), (0x5D, 0x7D)  # [ {   ] }
_QUOTE, _BACKSLASH = 0x22, 0x5C


class JsonBodyInvalid(WebError):
    """The body is not a JSON object the API can read. 422 like the API's other input errors, with one
    entry under `errors` whose `loc` starts with "body" and whose message says why."""

    status = 422

    def __init__(self, kind: str, message: str, loc: tuple[str, ...] = ("body",)):
        super().__init__(
            "入力内容に誤りがあります。", extra={"errors": [{"loc": list(loc), "type": kind, "message": message}]}
        )
        self.kind = kind


def nesting_exceeds(raw: bytes, limit: int) -> bool:
    """Whether JSON text nests arrays/objects deeper than `limit`, found without recursing.

    Brackets inside strings do not count. Malformed text is left to the parser: a closing bracket with
    nothing open ends the scan, since the parser fails there before going any deeper.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # the usual body: nothing to scan
    depth = 0
    in_string = escaped = False
    for byte in raw:  # UTF-8 continuation bytes are >= 0x80, never one of the bytes compared here
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSE:
            depth -= 1
            if depth < 0:
                return False
    return False


class _Refused(Exception):
    def __init__(self, kind: str, message: str, loc: tuple[str, ...] = ("body",)):
        self.args = (kind, message, loc)


def _no_constant(name: str) -> None:
    raise _Refused("json_invalid", f"リクエスト本文（body）に {name} は使えません。数値は有限の値で送ってください。")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("json_invalid", "リクエスト本文（body）の数値が大きすぎます。")
    return value


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # Parsers disagree on which of two equal keys wins; the digest of an idempotent request and
        # the validated fields must describe the same thing, so neither is chosen.
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                break
            seen.add(key)
        raise _Refused("json_duplicate_key", "リクエスト本文（body）に同じ項目が2回以上あります。", ("body", key[:64]))
    return obj


def parse_json_object(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict:
    """The JSON object in `raw` (UTF-8). Raises JsonBodyInvalid with the reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonBodyInvalid("json_invalid", "リクエスト本文（body）は UTF-8 のJSONで送ってください。") from None
    if nesting_exceeds(raw, max_depth):
        raise JsonBodyInvalid(
            "json_too_deep", f"リクエスト本文（body）のJSONの入れ子が深すぎます（{max_depth}段まで）。"
        )
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite)
    except _Refused as refused:
        raise JsonBodyInvalid(*refused.args) from None
    except ValueError:  # JSONDecodeError, and an integer too long to convert
        raise JsonBodyInvalid("json_invalid", "リクエスト本文（body）をJSONとして読み取れません。") from None
    if not isinstance(data, dict):
        raise JsonBodyInvalid("model_type", "リクエスト本文（body）はJSONオブジェクト（{...}）で送ってください。")
    return data


async def read_json_object(request: Request, *, max_depth: int = MAX_JSON_DEPTH) -> dict:
    """The request's body as a JSON object (its size is already limited by SecurityMiddleware)."""
    return parse_json_object(await request.body(), max_depth=max_depth)


async def read_form(request: Request) -> FormData:
    """The request's form fields (urlencoded or multipart). A file part, or more than Starlette's 1,000
    fields, is a 400 (Starlette's HTTPException, rendered in Japanese by app/web/setup.py)."""
    return await request.form(max_files=0)
