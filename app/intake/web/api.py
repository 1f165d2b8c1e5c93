"""JSON API under /api/v1: submit an application (idempotent), check status, bank/branch type-ahead,
and the OpenAPI document describing them."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.crypto import derive_key
from app.intake import banks
from app.intake.changes import AccountChangeTooLate, Change, change_account
from app.intake.claims import Claim
from app.intake.forms import (
    BankAccount,
    BankDetails,
    FieldError,
    FormInvalid,
    normalise_access_code,
    normalise_pin,
    resolve,
    translate,
)
from app.intake.signin import (
    IP_WINDOW_S,
    SIGNIN_FAILED_MESSAGE,
    authenticate,
    check_ip,
    locked_message,
    locked_until,
    municipality_keys,
    record_ip_failure,
)
from app.intake.status import latest_application, progress
from app.intake.web.batcher import RateLimited, SignInRejected, SubmitBatcher, for_app
from app.registry.receipts import format_receipt
from app.tenancy.codes import MunicipalityCodeError, validate_code
from app.tenancy.municipalities import get_municipality
from app.tenancy.transaction import platform_transaction, tenant_transaction
from app.web.bodies import read_json_object
from app.web.errors import TooManyRequests, WebError

log = logging.getLogger("kyufu.intake")

# How long a process believes a municipality code it has seen registered (the submit API is the surge path:
# one look-up per minute per code, not per request). Kept on the app's state, not in this module.
KNOWN_FOR_S = 60.0


class ApplicationRequest(BaseModel):
    """POST /api/v1/applications: claim the benefit of a 確認書 with a bank account."""

    model_config = ConfigDict(extra="forbid", str_max_length=200)

    municipality_code: str = Field(description="6-digit 地方公共団体コード of the letter's municipality")
    access_code: str = Field(max_length=64, description="確認書番号 (hyphens and spaces ignored)")
    pin: str = Field(max_length=32, description="暗証番号 printed on the letter")
    bank: BankDetails

    @field_validator("municipality_code")
    @classmethod
    def _code(cls, v: str) -> str:
        from pydantic_core import PydanticCustomError

        try:
            validate_code(v)
        except MunicipalityCodeError:
            raise PydanticCustomError(
                "kyufu_municipality_code", "地方公共団体コードは検査数字を含む6桁の数字で入力してください。"
            ) from None
        return v


class AccountChangeRequest(ApplicationRequest):
    """POST /api/v1/account: 口座変更の届出 after applying, while the payment is not in a batch."""


class StatusRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=200)
    municipality_code: str
    access_code: str = Field(max_length=64)
    pin: str = Field(max_length=32)


class ApiInvalid(WebError):
    status = 422

    def __init__(self, errors: list[FieldError]):
        super().__init__("入力内容に誤りがあります。", extra={"errors": [e.as_dict() for e in errors]})


async def _signin_refused(request: Request, code: str, access_code: str) -> WebError:
    """The 401 for a failed sign-in. A live letter code locked right now says so, until when and whom to ask
    (the same rule and words as the resident pages: docs/security.md, "Telling a resident they are locked
    out"), with `reason` and `locked_until` for a client to show; anything else gets the one generic message."""
    async with tenant_transaction(request.app.state.pool, code, readonly=True) as conn:
        until = await locked_until(conn, code, access_code)
        municipality = await get_municipality(conn, code) if until else None
    if until is None or municipality is None:
        return WebError(SIGNIN_FAILED_MESSAGE, status=401)
    return WebError(
        locked_message("この確認書番号", until, municipality.name),
        status=401,
        extra={"reason": "locked", "locked_until": until.isoformat()},
    )


async def _letter_and_account(
    request: Request, model: type[ApplicationRequest]
) -> tuple[dict, ApplicationRequest, BankAccount]:
    """A body naming a letter and an account: parsed, the account resolved (every wrong field at once, 422),
    the municipality served (404)."""
    data = await read_json_object(request)
    try:
        req = model.model_validate(data)
    except ValidationError as exc:
        raise ApiInvalid(translate(exc)) from None
    try:
        account = resolve(req.bank, ("bank",))
    except FormInvalid as exc:
        raise ApiInvalid(exc.errors) from None
    await _known(request, req.municipality_code)
    return data, req, account


async def _known(request: Request, code: str) -> None:
    state = request.app.state
    known: dict[str, float] = getattr(state, "known_municipalities", None) or {}
    state.known_municipalities = known
    if known.get(code, 0.0) > time.monotonic():
        return
    async with platform_transaction(state.pool) as conn:
        if await get_municipality(conn, code) is None:
            raise WebError("指定された地方公共団体はこのサービスを利用していません。", status=404)
    known[code] = time.monotonic() + KNOWN_FOR_S


def _digest_key(request: Request) -> bytes:
    return derive_key(request.app.state.settings.session_secret or "", "idempotency")


def _request_digest(pin_key_material: bytes, data: dict) -> bytes:
    # Keyed: the body contains the PIN, and a plain hash of a short PIN could be reversed.
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(pin_key_material, canonical, hashlib.sha256).digest()


async def create_application(request: Request) -> Response:
    key = request.headers.get("idempotency-key", "").strip()
    if not key or len(key) > 255:
        raise ApiInvalid(
            [
                FieldError(
                    ("header", "Idempotency-Key"),
                    "missing",
                    "Idempotency-Key ヘッダー（255文字以内）を指定してください。",
                )
            ]
        )
    data, req, account = await _letter_and_account(request, ApplicationRequest)
    code = req.municipality_code
    ip = request.client.host if request.client else "-"
    batcher: SubmitBatcher = for_app(request)
    claim = Claim(0, account, "online", idempotency_key=key, request_sha256=_request_digest(_digest_key(request), data))
    try:
        # The batcher checks the per-address limit (check_ip) for the whole batch, then signs in.
        result = await batcher.submit(code, normalise_access_code(req.access_code), normalise_pin(req.pin), claim, ip)
    except Exception as exc:  # the batch's transaction failed; nothing was written for this request
        log.error("application submit failed: %s", type(exc).__name__)
        raise WebError(
            "ただいま混み合っています。同じ Idempotency-Key で再送してください。",
            status=503,
            headers={"Retry-After": "1"},
        ) from None
    if isinstance(result, RateLimited):
        raise TooManyRequests(IP_WINDOW_S)
    if isinstance(result, SignInRejected):
        await record_ip_failure(request.app.state.redis, ip)
        raise await _signin_refused(request, code, normalise_access_code(req.access_code))
    return JSONResponse(result.response(), status_code=result.http_status)


ACCOUNT_CHANGE_REFUSED = {
    "none": (404, "この確認書での申請はまだありません。口座は申請のときに指定してください。"),
    "closed": (409, "この申請は辞退または取下げ済みのため、口座を変更できません。"),
    "too_late": (
        409,
        "支払の準備（振込データの作成）が始まっているため、口座を変更できません。お住まいの自治体の給付金担当窓口に"
        "お問い合わせください。",
    ),
}


async def change_account_api(request: Request) -> Response:
    """口座変更の届出 by API (app/intake/changes.py, the rule the resident pages and the console use): 200
    with `result` 'changed' or 'same' (a repeat changes nothing), 404 before any application, 409 when closed
    or too late. The application is verified again on the new account."""
    _, req, account = await _letter_and_account(request, AccountChangeRequest)
    code = req.municipality_code
    redis = request.app.state.redis
    ip = request.client.host if request.client else "-"
    await check_ip(redis, ip)
    settings = request.app.state.settings
    access_code = normalise_access_code(req.access_code)
    try:
        async with tenant_transaction(request.app.state.pool, code) as conn:
            keys = await municipality_keys(conn, settings.master_key_bytes, code)
            letter = (await authenticate(conn, keys, code, [(access_code, normalise_pin(req.pin))]))[0]
            change = None
            if letter is not None:
                actor = f"resident:letter:{letter.letter_id}"
                change = await change_account(conn, keys.cipher, code, letter.entitlement_id, account, actor=actor)
    except AccountChangeTooLate:
        change = Change("too_late")
    if letter is None or change is None:
        await record_ip_failure(redis, ip)
        raise await _signin_refused(request, code, access_code)
    if change.kind in ACCOUNT_CHANGE_REFUSED:
        status, message = ACCOUNT_CHANGE_REFUSED[change.kind]
        raise WebError(message, status=status, extra={"reason": change.kind})
    if change.kind == "changed":
        for_app(request).after_created(code)  # the application's verification, due again
    assert change.receipt_no is not None
    return JSONResponse(
        {
            "result": change.kind,
            "receipt_no": change.receipt_no,
            "receipt": format_receipt(change.receipt_no),
            "bank_name": account.bank_name,
            "branch_name": account.branch_name,
        }
    )


async def application_status(request: Request) -> Response:
    data = await read_json_object(request)
    try:
        req = StatusRequest.model_validate(data)
        validate_code(req.municipality_code)
    except ValidationError as exc:
        raise ApiInvalid(translate(exc)) from None
    except MunicipalityCodeError:
        raise ApiInvalid(
            [FieldError(("municipality_code",), "kyufu_municipality_code", "地方公共団体コードが正しくありません。")]
        ) from None
    code = req.municipality_code
    await _known(request, code)
    redis = request.app.state.redis
    ip = request.client.host if request.client else "-"
    await check_ip(redis, ip)
    settings = request.app.state.settings
    async with tenant_transaction(request.app.state.pool, code) as conn:
        keys = await municipality_keys(conn, settings.master_key_bytes, code)
        letter = (
            await authenticate(conn, keys, code, [(normalise_access_code(req.access_code), normalise_pin(req.pin))])
        )[0]
        app = await latest_application(conn, code, letter.entitlement_id) if letter else None
    if letter is None:
        await record_ip_failure(redis, ip)
        raise await _signin_refused(request, code, normalise_access_code(req.access_code))
    p = progress(app)
    if p is None or app is None:
        return JSONResponse({"status": "not_applied", "label": "未申請"})
    return JSONResponse(
        {
            "receipt_no": app["receipt_no"],
            "receipt": format_receipt(app["receipt_no"]),
            "status": p.key,
            "label": p.label,
            "detail": p.detail,
            "transfer_date": p.transfer_date.isoformat() if p.transfer_date else None,
        }
    )


async def bank_search(request: Request) -> Response:
    q = request.query_params.get("q", "")[:50]
    items = [{"code": b.code, "name": b.name, "kana": b.kana} for b in banks.search_banks(q)]
    return JSONResponse({"items": items}, headers={"cache-control": "public, max-age=3600"})


async def branch_search(request: Request) -> Response:
    bank_code = request.path_params["bank_code"]
    if banks.bank(bank_code) is None:
        raise WebError("金融機関コードに該当する金融機関がありません。", status=404)
    q = request.query_params.get("q", "")[:50]
    items = [{"code": b.code, "name": b.name, "kana": b.kana} for b in banks.search_branches(bank_code, q)]
    return JSONResponse({"items": items}, headers={"cache-control": "public, max-age=3600"})


# ---- OpenAPI --------------------------------------------------------------------------------------

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "status": {"type": "integer"},
                "message": {"type": "string"},
                "type": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "loc": {"type": "array", "items": {"type": "string"}},
                            "type": {"type": "string"},
                            "message": {"type": "string"},
                        },
                        "required": ["loc", "type", "message"],
                    },
                },
                "reason": {"type": "string", "enum": ["locked", "none", "closed", "too_late"]},
                "locked_until": {"type": "string", "format": "date-time"},
            },
            "required": ["status", "message"],
        }
    },
    "required": ["error"],
}
_RECEIPT = {
    "type": "object",
    "properties": {
        "receipt_no": {"type": "string", "pattern": "^[0-9]{11}$"},
        "status": {"type": "string"},
        "duplicate": {"type": "boolean"},
        "message": {"type": "string"},
    },
    "required": ["receipt_no", "status", "duplicate"],
}


def _err(desc: str) -> dict:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


# Admission control (app/web/admission.py) may shed any API request under overload.
_BUSY = _err("overloaded: retry after the Retry-After seconds")


def openapi_document() -> dict:
    schemas: dict = {}
    for model in (ApplicationRequest, AccountChangeRequest, StatusRequest):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    schemas["Error"] = _ERROR
    schemas["Receipt"] = _RECEIPT
    listing = {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"code": {"type": "string"}, "name": {"type": "string"}, "kana": {"type": "string"}},
                },
            }
        },
    }
    q = {"name": "q", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 50}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "kyufu resident API", "version": "1"},
        "paths": {
            "/api/v1/applications": {
                "post": {
                    "summary": "Apply with a 確認書 code/PIN and a bank account (once per entitlement)",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ApplicationRequest"}}
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "accepted",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}},
                        },
                        "409": {
                            "description": "already applied (the first receipt), or the same key is in flight",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/Receipt"},
                                            {"$ref": "#/components/schemas/Error"},
                                        ]
                                    }
                                }
                            },
                        },
                        "401": _err("code or PIN wrong or unknown; a locked code says so (reason, locked_until)"),
                        "404": _err("municipality not served"),
                        "413": _err("body too large"),
                        "422": _err("invalid input, or the key was used with another body"),
                        "429": _err("too many failures from this address"),
                        "503": _err("temporarily unavailable; retry with the same key"),
                    },
                }
            },
            "/api/v1/status": {
                "post": {
                    "summary": "Where an application stands",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StatusRequest"}}},
                    },
                    "responses": {
                        "200": {"description": "status"},
                        "401": _err("code or PIN wrong; a locked code says so (reason: locked, locked_until)"),
                        "404": _err("municipality not served"),
                        "413": _err("body too large"),
                        "422": _err("invalid input"),
                        "429": _err("too many failures"),
                        "503": _BUSY,
                    },
                }
            },
            "/api/v1/account": {
                "post": {
                    "summary": "口座変更の届出: another account, while the payment is not in a batch",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/AccountChangeRequest"}}
                        },
                    },
                    "responses": {
                        "200": {"description": "changed, or the same account as on file (result: changed | same)"},
                        "401": _err("code or PIN wrong; a locked code says so (reason: locked, locked_until)"),
                        "404": _err("municipality not served, or no application yet (reason: none)"),
                        "409": _err("declined or withdrawn (reason: closed), or the payment is in a batch (too_late)"),
                        "413": _err("body too large"),
                        "422": _err("invalid input"),
                        "429": _err("too many failures"),
                        "503": _BUSY,
                    },
                }
            },
            "/api/v1/banks": {
                "get": {
                    "summary": "Bank type-ahead",
                    "parameters": [q],
                    "responses": {
                        "200": {"description": "banks", "content": {"application/json": {"schema": listing}}},
                        "503": _BUSY,
                    },
                }
            },
            "/api/v1/banks/{bank_code}/branches": {
                "get": {
                    "summary": "Branch type-ahead",
                    "parameters": [
                        {
                            "name": "bank_code",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[0-9]{4}$"},
                        },
                        q,
                    ],
                    "responses": {
                        "200": {"description": "branches", "content": {"application/json": {"schema": listing}}},
                        "404": _err("unknown bank"),
                        "503": _BUSY,
                    },
                }
            },
        },
        "components": {"schemas": schemas},
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())
