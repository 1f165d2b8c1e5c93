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

from app import outbox
from app.intake.forms import BankAccount
from app.intake.signin import Keys, municipality_keys
from app.registry.receipts import receipt_number

Kind = Literal["created", "duplicate", "replay", "key_reused", "in_flight", "closed"]
ACTIVE = "status NOT IN ('rejected', 'withdrawn')"

# One statement per claim list before the writes: for each claim (in order) an advisory lock on its
# idempotency key (try-lock, so a duplicate in flight is refused rather than queued; NULL for a claim
# without a key), an application id reserved from the sequence (it is part of the ciphertexts'
# associated data, so the row is written once, complete; an id left unused is only a gap in the
# receipt numbers) and the entitlement's status (NULL: no such entitlement here).
PREPARE_CLAIMS = """
SELECT c.ord,
       pg_try_advisory_xact_lock(hashtextextended($1 || '|' || c.key, 4)) AS locked,
       nextval('applications_application_id_seq'::regclass) AS application_id,
       e.status AS entitlement_status
FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS c(key, ent, ord)
LEFT JOIN entitlements e ON e.municipality_code = $1 AND e.entitlement_id = c.ent
ORDER BY c.ord
"""
# Everything a claim writes, for many claims, in one statement (one round trip per batch instead of
# one per table). It runs after PREPARE_CLAIMS took the key locks, so its snapshot sees any stored
# answer of a key whose earlier request has committed:
#   stored  - keys that already have an answer (replayed or refused by the caller, never re-applied);
#   ins     - applications of the insertable claims without a stored key; ON CONFLICT leaves out an
#             entitlement that already has an active application (the caller answers with that one);
#   claimed, queued, answered - for each inserted application: the entitlement marked claimed, the
#             outbox row for verify_application (same shape as app.outbox.add) and the
#             idempotency key with its 201 answer (prepared by the caller, as the receipt is known).
# OVERRIDING SYSTEM VALUE: the ids were reserved by PREPARE_CLAIMS.
WRITE_CLAIMS = f"""
WITH c AS (
    SELECT * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::boolean[], $8::text[],
                         $9::text[], $10::smallint[], $11::bytea[], $12::bytea[], $13::text[], $14::bytea[],
                         $15::text[], $16::boolean[], $17::text[], $18::text[])
        AS c(id, ent, receipt, channel, applicant, proxy, bank, branch, atype, num, holder, key, sha, answer,
             insertable, identification, job_id)
),
stored AS (
    SELECT k.idempotency_key, k.request_sha256, k.status_code, k.response
    FROM intake_idempotency_keys k
    WHERE k.municipality_code = $1 AND k.idempotency_key IN (SELECT key FROM c WHERE key IS NOT NULL)
),
ins AS (
    INSERT INTO applications (municipality_code, application_id, entitlement_id, receipt_no, channel,
        applicant_resident_code, is_proxy, bank_code, branch_code, account_type, account_number_enc, holder_kana_enc,
        identification)
    OVERRIDING SYSTEM VALUE
    SELECT $1, c.id, c.ent, c.receipt, c.channel, c.applicant, c.proxy, c.bank, c.branch, c.atype, c.num, c.holder,
           c.identification
    FROM c
    WHERE c.insertable AND (c.key IS NULL OR c.key NOT IN (SELECT idempotency_key FROM stored))
    ON CONFLICT (municipality_code, entitlement_id) WHERE {ACTIVE} DO NOTHING
    RETURNING application_id, entitlement_id
),
claimed AS (
    UPDATE entitlements SET status = 'claimed'
    WHERE municipality_code = $1 AND entitlement_id IN (SELECT entitlement_id FROM ins) AND status = 'open'
),
queued AS (
    INSERT INTO outbox (municipality_code, job_name, job_id, args)
    SELECT $1, 'verify_application', c.job_id, jsonb_build_array($1, ins.application_id)
    FROM ins JOIN c ON c.id = ins.application_id
    ON CONFLICT (municipality_code, job_id) DO NOTHING
),
answered AS (
    INSERT INTO intake_idempotency_keys (municipality_code, idempotency_key, request_sha256, status_code, response,
        application_id)
    SELECT $1, c.key, c.sha, 201, c.answer::jsonb, c.id
    FROM c JOIN ins ON ins.application_id = c.id
    WHERE c.key IS NOT NULL
)
SELECT NULL::bigint AS application_id, idempotency_key, request_sha256, status_code, response::text AS response
FROM stored
UNION ALL
SELECT application_id, NULL, NULL, NULL, NULL FROM ins
"""
ACTIVE_BY_ENTITLEMENT = f"""
SELECT entitlement_id, application_id, receipt_no, status FROM applications
WHERE municipality_code = $1 AND entitlement_id = ANY($2::bigint[]) AND {ACTIVE}
"""
RECORD_DUPLICATES = """
INSERT INTO intake_duplicate_claims (municipality_code, entitlement_id, application_id, channel)
SELECT $1, d.ent, d.app, d.channel FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS d(ent, app, channel)
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
    # 'letter' (a 確認書 code and PIN) or 'registry_match' (app/intake/identity.py; always reviewed).
    identification: str = "letter"


@dataclass
class Outcome:
    kind: Kind
    receipt_no: str | None = None
    application_id: int | None = None
    status: str | None = None
    stored: dict | None = field(default=None)  # replay: (status_code, response) of the first request

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
    Outcome per claim, in order.

    Three statements whatever the number of claims (PREPARE_CLAIMS, WRITE_CLAIMS, and only when some
    claim is a duplicate or closed, the statements that record those)."""
    outcomes: list[Outcome | None] = [None] * len(claims)
    seen: set[str] = set()
    live: list[int] = []
    for i, c in enumerate(claims):
        if c.idempotency_key is not None and c.idempotency_key in seen:
            outcomes[i] = Outcome("in_flight")  # the same key twice in one batch: the later one waits its turn
        else:
            if c.idempotency_key is not None:
                seen.add(c.idempotency_key)
            live.append(i)
    prepared = await conn.fetch(
        PREPARE_CLAIMS, code, [claims[i].idempotency_key for i in live], [claims[i].entitlement_id for i in live]
    )
    ids: dict[int, int] = {}
    status: dict[int, str | None] = {}
    for i, row in zip(live, prepared):
        if row["locked"] is False:
            outcomes[i] = Outcome("in_flight")
        else:
            ids[i] = row["application_id"]
            status[i] = row["entitlement_status"]
    live = [i for i in live if outcomes[i] is None]
    if not live:
        return _decided(outcomes)

    cipher = keys.cipher
    cols: list[list] = [[] for _ in range(17)]
    for i in live:
        app_id, c, a = ids[i], claims[i], claims[i].account
        receipt = receipt_number(keys.receipt_key, app_id)
        for col, value in zip(
            cols,
            (
                app_id,
                c.entitlement_id,
                receipt,
                c.channel,
                c.applicant_resident_code,
                c.is_proxy,
                a.bank_code,
                a.branch_code,
                a.account_type,
                cipher.encrypt("applications", "account_number", app_id, a.account_number),
                cipher.encrypt("applications", "holder_kana", app_id, a.holder_kana),
                c.idempotency_key,
                c.request_sha256,
                json.dumps(response_body(Outcome("created", receipt, app_id, "received"))),
                status[i] is not None and status[i] not in ("declined", "withdrawn"),
                c.identification,
                outbox.verify_job_id(code, app_id),
            ),
        ):
            col.append(value)
    stored: dict[str, asyncpg.Record] = {}
    inserted: set[int] = set()
    for r in await conn.fetch(WRITE_CLAIMS, code, *cols):
        if r["application_id"] is None:
            stored[r["idempotency_key"]] = r
        else:
            inserted.add(r["application_id"])

    for i in live:
        c = claims[i]
        first = stored.get(c.idempotency_key) if c.idempotency_key is not None else None
        if first is not None:
            if bytes(first["request_sha256"]) == c.request_sha256:
                outcomes[i] = Outcome(
                    "replay", stored={"status_code": first["status_code"], "response": json.loads(first["response"])}
                )
            else:
                outcomes[i] = Outcome("key_reused")
        elif status[i] is None:
            raise EntitlementNotFound("entitlement not found in this municipality")  # rolls back the caller
        elif status[i] in ("declined", "withdrawn"):
            outcomes[i] = Outcome("closed")
        elif ids[i] in inserted:
            outcomes[i] = Outcome("created", receipt_number(keys.receipt_key, ids[i]), ids[i], "received")

    rest = [i for i in live if outcomes[i] is None]
    if rest:
        # The entitlement already has an active application (another channel, an earlier submit, or an
        # earlier claim in this very batch): answer with that one's receipt and tell staff.
        active = {
            r["entitlement_id"]: r
            for r in await conn.fetch(ACTIVE_BY_ENTITLEMENT, code, sorted({claims[i].entitlement_id for i in rest}))
        }
        duplicate_of: list[int] = []
        for i in rest:
            row = active[claims[i].entitlement_id]
            outcomes[i] = Outcome("duplicate", row["receipt_no"], row["application_id"], row["status"])
            duplicate_of.append(row["application_id"])
        await conn.execute(
            RECORD_DUPLICATES,
            code,
            [claims[i].entitlement_id for i in rest],
            duplicate_of,
            [claims[i].channel for i in rest],
        )
    decided = _decided(outcomes)
    # The 201 answers were stored by WRITE_CLAIMS; a duplicate's or a closed claim's answer is stored here.
    to_store = [i for i in live if claims[i].idempotency_key is not None and decided[i].kind in ("duplicate", "closed")]
    if to_store:
        await conn.execute(
            STORE_KEYS,
            code,
            [claims[i].idempotency_key for i in to_store],
            [claims[i].request_sha256 for i in to_store],
            [decided[i].http_status for i in to_store],
            [json.dumps(decided[i].response()) for i in to_store],
            [decided[i].application_id for i in to_store],
        )
    return decided


def _decided(outcomes: list[Outcome | None]) -> list[Outcome]:
    """The outcomes once every claim has one (each path of insert_claims decides every claim it keeps)."""
    decided = [o for o in outcomes if o is not None]
    if len(decided) != len(outcomes):
        raise RuntimeError("insert_claims left a claim without an outcome")
    return decided


async def submit_application(
    conn: asyncpg.Connection,
    settings,
    code: str,
    entitlement_id: int,
    bank: BankAccount,
    channel: str = "paper",
    *,
    applicant_resident_code: str | None = None,
    is_proxy: bool = False,
    identification: str = "letter",
) -> Outcome:
    """One claim, for the resident pages and for staff entering a paper 確認書 (the same path as online).

    Call inside tenant_transaction(conn, code); the caller commits. After commit, call
    `dispatch_after_commit` (or leave it to the outbox sweeper)."""
    keys = await municipality_keys(conn, settings.master_key_bytes, code)
    claim = Claim(entitlement_id, bank, channel, applicant_resident_code, is_proxy, identification=identification)
    return (await insert_claims(conn, keys, code, [claim]))[0]
