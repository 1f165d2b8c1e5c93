"""Claims: writing applications, once per entitlement, from any channel.

`insert_claims` is the one code path: the online API (batched across concurrent requests), the
resident pages and staff entering a paper 確認書 (`submit_application(..., channel='paper')`) all end
here. Inside the caller's tenant transaction it writes, for every claim, the application (bank details
encrypted, bound to the application id), the idempotency record (API) and the outbox row for
`verify_application` — all or nothing.

Exactly-once rests on the database: the partial unique index applications_one_active refuses a second
active application for an entitlement (ON CONFLICT ... DO NOTHING, then the existing receipt is
returned and the attempt recorded in intake_duplicate_claims); the primary key of
intake_idempotency_keys stores one answer per key; a transaction-scoped advisory lock on the key makes a
concurrent duplicate fail fast (409) instead of waiting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import asyncpg

from app.intake.forms import BankAccount
from app.intake.signin import Keys, municipality_keys

Kind = Literal["created", "duplicate", "replay", "key_reused", "in_flight", "closed"]
ACTIVE = "status NOT IN ('rejected', 'withdrawn')"

# One advisory lock per (municipality, key); try-lock so a duplicate in flight is refused, not queued.
LOCK_KEYS = """
SELECT k.ord, pg_try_advisory_xact_lock(hashtextextended($1 || '|' || k.key, 4)) AS locked
FROM unnest($2::text[]) WITH ORDINALITY AS k(key, ord)
ORDER BY k.ord
"""
STORED_KEYS = """
SELECT idempotency_key, request_sha256, status_code, response FROM intake_idempotency_keys
WHERE municipality_code = $1 AND idempotency_key = ANY($2::text[])
"""
ENTITLEMENT_STATUS = """
SELECT entitlement_id, status FROM entitlements WHERE municipality_code = $1 AND entitlement_id = ANY($2::bigint[])
"""
RESERVE_IDS = "SELECT nextval('applications_application_id_seq'::regclass) FROM generate_series(1, $1)"
# OVERRIDING SYSTEM VALUE: the id was reserved above because it is part of the ciphertexts' associated
# data, so the row is complete when written (never a placeholder updated later).
INSERT_APPLICATIONS = f"""
INSERT INTO applications (municipality_code, application_id, entitlement_id, receipt_no, channel,
    applicant_resident_code, is_proxy, bank_code, branch_code, account_type, account_number_enc, holder_kana_enc)
OVERRIDING SYSTEM VALUE
SELECT $1, a.id, a.ent, a.receipt, a.channel, a.applicant, a.proxy, a.bank, a.branch, a.atype, a.num, a.holder
FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::boolean[], $8::text[],
            $9::text[], $10::smallint[], $11::bytea[], $12::bytea[])
     AS a(id, ent, receipt, channel, applicant, proxy, bank, branch, atype, num, holder)
ON CONFLICT (municipality_code, entitlement_id) WHERE {ACTIVE} DO NOTHING
RETURNING application_id
"""
ACTIVE_BY_ENTITLEMENT = f"""
SELECT entitlement_id, application_id, receipt_no, status FROM applications
WHERE municipality_code = $1 AND entitlement_id = ANY($2::bigint[]) AND {ACTIVE}
"""
RECORD_DUPLICATES = """
INSERT INTO intake_duplicate_claims (municipality_code, entitlement_id, application_id, channel)
SELECT $1, d.ent, d.app, d.channel FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS d(ent, app, channel)
"""
MARK_CLAIMED = """
UPDATE entitlements SET status = 'claimed'
WHERE municipality_code = $1 AND entitlement_id = ANY($2::bigint[]) AND status = 'open'
"""
# Same row shape as workers.outbox.add, for many rows in one statement.
ADD_OUTBOX = """
INSERT INTO outbox (municipality_code, job_name, job_id, args)
SELECT $1, 'verify_application', o.job_id, o.args::jsonb FROM unnest($2::text[], $3::text[]) AS o(job_id, args)
ON CONFLICT (municipality_code, job_id) DO NOTHING
"""
STORE_KEYS = """
INSERT INTO intake_idempotency_keys (municipality_code, idempotency_key, request_sha256, status_code, response,
    application_id)
SELECT $1, k.key, k.sha, k.status, k.response::jsonb, k.app
FROM unnest($2::text[], $3::bytea[], $4::smallint[], $5::text[], $6::bigint[]) AS k(key, sha, status, response, app)
"""


class EntitlementNotFound(LookupError):
    """The entitlement id does not exist in this municipality."""


@dataclass
class Claim:
    entitlement_id: int
    account: BankAccount
    channel: str = "online"
    applicant_resident_code: str | None = None
    is_proxy: bool = False
    idempotency_key: str | None = None
    request_sha256: bytes | None = None


@dataclass
class Outcome:
    kind: Kind
    receipt_no: str | None = None
    application_id: int | None = None
    status: str | None = None
    stored: dict | None = field(default=None)   # replay: (status_code, response) of the first request

    @property
    def http_status(self) -> int:
        if self.kind == "replay":
            assert self.stored is not None
            return int(self.stored["status_code"])
        return {"created": 201, "duplicate": 409, "key_reused": 422, "in_flight": 409, "closed": 409}[self.kind]

    def response(self) -> dict:
        if self.kind == "replay":
            assert self.stored is not None
            return self.stored["response"]
        return response_body(self)


def receipt_number(application_id: int) -> str:
    """10 digits: the id and a weighted mod-10 check digit, so a mistyped receipt is caught."""
    body = f"{application_id:09d}"
    check = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body))) % 10
    return body + str((10 - check) % 10)


def format_receipt(receipt_no: str) -> str:
    return f"{receipt_no[:3]}-{receipt_no[3:6]}-{receipt_no[6:]}"


def response_body(outcome: Outcome) -> dict:
    if outcome.kind in ("created", "duplicate"):
        body = {"receipt_no": outcome.receipt_no, "status": outcome.status, "duplicate": outcome.kind == "duplicate"}
        if outcome.kind == "duplicate":
            body["message"] = "この給付金はすでに申請を受け付けています。受付番号は最初の申請のものです。"
        return body
    messages = {
        "key_reused": "この Idempotency-Key は別の内容の申請に使われています。",
        "in_flight": "同じ Idempotency-Key の申請を処理中です。少し待ってから同じ内容で再送してください。",
        "closed": "この給付金は辞退または取り下げ済みのため、申請できません。窓口にお問い合わせください。",
    }
    return {"error": {"status": outcome.http_status, "type": outcome.kind, "message": messages[outcome.kind]}}


async def insert_claims(conn: asyncpg.Connection, keys: Keys, code: str, claims: list[Claim]) -> list[Outcome]:
    """Write claims of one municipality. Call inside tenant_transaction(conn, code); returns one
    Outcome per claim, in order."""
    outcomes: list[Outcome | None] = [None] * len(claims)
    live = list(range(len(claims)))

    keyed = [i for i in live if claims[i].idempotency_key is not None]
    if keyed:
        seen: set[str] = set()
        to_lock: list[int] = []
        for i in keyed:
            key = claims[i].idempotency_key
            assert key is not None
            if key in seen:
                outcomes[i] = Outcome("in_flight")  # the same key twice in one batch: the later one waits its turn
            else:
                seen.add(key)
                to_lock.append(i)
        locks = await conn.fetch(LOCK_KEYS, code, [claims[i].idempotency_key for i in to_lock])
        locked = [to_lock[r["ord"] - 1] for r in locks if r["locked"]]
        for r in locks:
            if not r["locked"]:
                outcomes[to_lock[r["ord"] - 1]] = Outcome("in_flight")
        stored = {r["idempotency_key"]: r for r in await conn.fetch(
            STORED_KEYS, code, [claims[i].idempotency_key for i in locked])}
        for i in locked:
            row = stored.get(claims[i].idempotency_key)  # type: ignore[arg-type]
            if row is not None:
                if bytes(row["request_sha256"]) == claims[i].request_sha256:
                    outcomes[i] = Outcome("replay", stored={
                        "status_code": row["status_code"], "response": json.loads(row["response"])})
                else:
                    outcomes[i] = Outcome("key_reused")
        live = [i for i in live if outcomes[i] is None]
    if not live:
        return outcomes  # type: ignore[return-value]

    statuses = {r["entitlement_id"]: r["status"] for r in await conn.fetch(
        ENTITLEMENT_STATUS, code, sorted({claims[i].entitlement_id for i in live}))}
    for i in live:
        status = statuses.get(claims[i].entitlement_id)
        if status is None:
            raise EntitlementNotFound("entitlement not found in this municipality")
        if status in ("declined", "withdrawn"):
            outcomes[i] = Outcome("closed")
    live = [i for i in live if outcomes[i] is None]

    if live:
        ids = [r[0] for r in await conn.fetch(RESERVE_IDS, len(live))]
        cipher = keys.cipher
        cols: list[list] = [[] for _ in range(11)]
        for app_id, i in zip(ids, live):
            c, a = claims[i], claims[i].account
            for col, value in zip(cols, (
                app_id, c.entitlement_id, receipt_number(app_id), c.channel, c.applicant_resident_code, c.is_proxy,
                a.bank_code, a.branch_code, a.account_type,
                cipher.encrypt("applications", "account_number", app_id, a.account_number),
                cipher.encrypt("applications", "holder_kana", app_id, a.holder_kana),
            )):
                col.append(value)
        inserted = {r[0] for r in await conn.fetch(INSERT_APPLICATIONS, code, *cols)}
        created_ents: list[int] = []
        for app_id, i in zip(ids, live):
            if app_id in inserted:
                outcomes[i] = Outcome("created", receipt_number(app_id), app_id, "received")
                created_ents.append(claims[i].entitlement_id)
        rest = [i for i in live if outcomes[i] is None]
        if rest:
            # The entitlement already has an active application (another channel, an earlier submit, or an
            # earlier claim in this very batch): answer with that one's receipt and tell staff.
            active = {r["entitlement_id"]: r for r in await conn.fetch(
                ACTIVE_BY_ENTITLEMENT, code, sorted({claims[i].entitlement_id for i in rest}))}
            for i in rest:
                row = active[claims[i].entitlement_id]
                outcomes[i] = Outcome("duplicate", row["receipt_no"], row["application_id"], row["status"])
            await conn.execute(
                RECORD_DUPLICATES, code, [claims[i].entitlement_id for i in rest],
                [outcomes[i].application_id for i in rest], [claims[i].channel for i in rest],  # type: ignore[union-attr]
            )
        if created_ents:
            await conn.execute(MARK_CLAIMED, code, sorted(created_ents))
            made = [o for o in outcomes if o is not None and o.kind == "created" and o.application_id in inserted]
            await conn.execute(
                ADD_OUTBOX, code,
                [f"verify:{code}:{o.application_id}" for o in made],
                [json.dumps([code, o.application_id]) for o in made],
            )

    to_store = [i for i in range(len(claims)) if claims[i].idempotency_key is not None
                and outcomes[i] is not None and outcomes[i].kind in ("created", "duplicate", "closed")]  # type: ignore[union-attr]
    if to_store:
        await conn.execute(
            STORE_KEYS, code,
            [claims[i].idempotency_key for i in to_store],
            [claims[i].request_sha256 for i in to_store],
            [outcomes[i].http_status for i in to_store],  # type: ignore[union-attr]
            [json.dumps(outcomes[i].response()) for i in to_store],  # type: ignore[union-attr]
            [outcomes[i].application_id for i in to_store],  # type: ignore[union-attr]
        )
    return outcomes  # type: ignore[return-value]


async def submit_application(
    conn: asyncpg.Connection, settings, code: str, entitlement_id: int, bank: BankAccount, channel: str = "paper",
    *, applicant_resident_code: str | None = None, is_proxy: bool = False,
) -> Outcome:
    """One claim, for the resident pages and for staff entering a paper 確認書 (the same path as online).

    Call inside tenant_transaction(conn, code); the caller commits. After commit, call
    `dispatch_after_commit` (or leave it to the outbox sweeper)."""
    keys = await municipality_keys(conn, settings.master_key_bytes, code)
    claim = Claim(entitlement_id, bank, channel, applicant_resident_code, is_proxy)
    return (await insert_claims(conn, keys, code, [claim]))[0]
