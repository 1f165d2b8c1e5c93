"""Verifying applications against the registry, for one application or many in one transaction.

Outcome per application (status, reason codes; docs/registry.md explains each code):

* rejected — entitlement_declined, entitlement_withdrawn, already_paid, applicant_not_in_household;
* needs_review — entitlement_changed, not_head, not_head_proxy, proxy_outside_household, proxy (every 代理申請),
  proxy_account, proxy_account_not_allowed (paid into the proxy's own account), kana_mismatch,
  holder_is_member_not_applicant, registry_kana_invalid, account_shared, late_application,
  early_application, identified_without_letter;
* verified — none of the above.

kana_mismatch, holder_is_member_not_applicant and registry_kana_invalid are the account-holder check
(payouts/holder.py: the holder's kana against the payee's registry kana, and the rest of the household's).

Idempotent and safe under concurrency: applications are locked FOR UPDATE and only those still
'received' are decided, so a second or concurrent run of the same job finds nothing to do and only marks
its outbox row done. Accounts are compared through a keyed hash (application_account_keys); an advisory
lock per hash stops two concurrent runs from each missing the other's use of the same account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import asyncpg

from app.crypto import FieldCipher
from payouts.accounts import account_key
from payouts.holder import holder_check, holder_key, registry_key

REJECTING = frozenset({"entitlement_declined", "entitlement_withdrawn", "already_paid", "applicant_not_in_household"})


LOAD = """
SELECT a.application_id, a.entitlement_id, a.applicant_resident_code, a.is_proxy, a.bank_code, a.branch_code,
       a.account_type, a.account_number_enc, a.holder_kana_enc, a.identification,
       e.status AS entitlement_status, e.head_resident_code, e.snapshot_id, e.household_no,
       p.base_date, p.apply_from, p.apply_until, p.proxy_account_allowed,
       x.pay_to_proxy, x.proxy_enc,
       (a.submitted_at AT TIME ZONE 'Asia/Tokyo')::date AS submitted_on,
       EXISTS (SELECT 1 FROM entitlement_conflicts c WHERE c.municipality_code = e.municipality_code
               AND c.entitlement_id = e.entitlement_id AND c.resolved_at IS NULL) AS conflicted
FROM applications a
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
JOIN programs p ON p.municipality_code = e.municipality_code AND p.program_id = e.program_id
LEFT JOIN application_proxies x ON x.municipality_code = a.municipality_code AND x.application_id = a.application_id
WHERE a.municipality_code = $1 AND a.application_id = ANY($2::bigint[]) AND a.status = 'received'
ORDER BY a.application_id
FOR UPDATE OF a
"""
# Members of each entitlement's household as it was on 基準日 (same rules as eligibility).
MEMBERS = """
WITH ent AS (
    SELECT e.entitlement_id, e.snapshot_id, e.household_no, p.base_date
    FROM entitlements e JOIN programs p ON p.municipality_code = e.municipality_code AND p.program_id = e.program_id
    WHERE e.municipality_code = $1 AND e.entitlement_id = ANY($2::bigint[])
), r AS (
    SELECT ent.entitlement_id, ent.base_date, r.*
    FROM ent JOIN residents r ON r.municipality_code = $1 AND r.snapshot_id = ent.snapshot_id
                              AND r.household_no = ent.household_no
    WHERE r.household_changed_on IS NULL OR r.household_changed_on <= ent.base_date
    UNION ALL
    SELECT ent.entitlement_id, ent.base_date, r.*
    FROM ent JOIN residents r ON r.municipality_code = $1 AND r.snapshot_id = ent.snapshot_id
                              AND r.prev_household_no = ent.household_no
    WHERE r.household_changed_on > ent.base_date
)
SELECT entitlement_id, resident_code, family_kana, given_kana FROM r
WHERE birth_date <= base_date AND (moved_in_on IS NULL OR moved_in_on <= base_date)
  AND (removed_on IS NULL OR removed_on > base_date)
"""
LOCK_KEYS = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS u(k) ORDER BY k"
# Active applications of other entitlements that used one of these accounts.
# Another household's live application with the same account. Compared by household, not entitlement:
# one household claiming two programs with its own account is normal, not sharing.
SHARED = """
SELECT k.account_key, e.household_no FROM application_account_keys k
JOIN applications a ON a.municipality_code = k.municipality_code AND a.application_id = k.application_id
JOIN entitlements e ON e.municipality_code = a.municipality_code AND e.entitlement_id = a.entitlement_id
WHERE k.municipality_code = $1 AND k.account_key = ANY($2::bytea[]) AND a.status NOT IN ('rejected', 'withdrawn')
"""
SAVE = """
UPDATE applications a SET status = u.status, reason_codes = string_to_array(u.reasons, ','), decided_at = now()
FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(id, status, reasons)
WHERE a.municipality_code = $1 AND a.application_id = u.id AND a.status = 'received'
"""
CLAIM = """
UPDATE entitlements SET status = 'claimed'
WHERE municipality_code = $1 AND entitlement_id = ANY($2::bigint[]) AND status = 'open'
"""
SAVE_KEYS = """
INSERT INTO application_account_keys (municipality_code, application_id, account_key)
SELECT $1, a, k FROM unnest($2::bigint[], $3::bytea[]) AS u(a, k)
ON CONFLICT DO NOTHING
"""


@dataclass
class Decision:
    application_id: int
    status: str
    reasons: list[str] = field(default_factory=list)


def decide(
    app: asyncpg.Record,
    holder: str | None,
    members: dict[str, str | None],
    shared: bool,
    proxy_key: str | None = None,
) -> list[str]:
    """Reason codes for one application. `holder` is the account holder's comparison key and `members` maps
    each household member's resident code to theirs (payouts/holder.py: the account-holder check);
    `proxy_key` is a proxy's own name key when they are paid into their account (app/intake/proxy.py)."""
    reasons: list[str] = []
    status = app["entitlement_status"]
    if status == "declined":
        reasons.append("entitlement_declined")
    elif status == "withdrawn":
        reasons.append("entitlement_withdrawn")
    elif status == "paid":
        reasons.append("already_paid")
    if app["conflicted"]:
        reasons.append("entitlement_changed")
    if app["apply_until"] and app["submitted_on"] > app["apply_until"]:
        reasons.append("late_application")
    if app["apply_from"] and app["submitted_on"] < app["apply_from"]:
        reasons.append("early_application")
    # An application without an applicant came through a 確認書 addressed to the head.
    applicant = app["applicant_resident_code"] or app["head_resident_code"]
    if applicant != app["head_resident_code"]:
        if applicant in members:
            reasons.append("not_head_proxy" if app["is_proxy"] else "not_head")
        else:
            reasons.append("proxy_outside_household" if app["is_proxy"] else "applicant_not_in_household")
    pay_to_proxy = bool(app["is_proxy"] and app["pay_to_proxy"])
    if app["is_proxy"]:
        # 代理申請 is always decided by a reviewer (CHECK applications_proxy_reviewed, migration 0026).
        reasons.append("proxy")
        if app["applicant_resident_code"] is None:
            reasons.append("proxy_outside_household")
        if pay_to_proxy:
            reasons.append("proxy_account" if app["proxy_account_allowed"] else "proxy_account_not_allowed")
    if pay_to_proxy and app["applicant_resident_code"] is None:
        # A proxy outside the household, paid into their own account: the holder is compared with the
        # name staff recorded from the proxy's ID (there is no registry name to compare with).
        holder_problem = None if holder is not None and holder == proxy_key else "kana_mismatch"
    else:
        # The payee: the proxy when paid into their own account, else the head (a proxy's application
        # pays the 世帯主 unless the program allows otherwise), else the applicant.
        payee = applicant if pay_to_proxy or not app["is_proxy"] else app["head_resident_code"]
        holder_problem = holder_check(holder, payee, members)
    if holder_problem:
        reasons.append(holder_problem)
    if shared:
        reasons.append("account_shared")
    # Identified by kana name, birth date and address instead of a mailed code (app/intake/identity.py):
    # never decided by the machine alone (the CHECK applications_registry_match_reviewed backs this).
    if app["identification"] == "registry_match":
        reasons.append("identified_without_letter")
    return reasons


async def household_keys(
    conn: asyncpg.Connection, code: str, entitlement_ids: list[int]
) -> dict[int, dict[str, str | None]]:
    """entitlement -> {resident code -> registry name key} of its household on 基準日 (payouts/holder.py)."""
    members: dict[int, dict[str, str | None]] = {}
    for m in await conn.fetch(MEMBERS, code, entitlement_ids):
        household = members.setdefault(m["entitlement_id"], {})
        household[m["resident_code"]] = registry_key(m["family_kana"], m["given_kana"])
    return members


def _status(reasons: list[str]) -> str:
    if REJECTING.intersection(reasons):
        return "rejected"
    return "needs_review" if reasons else "verified"


async def verify_applications(
    conn: asyncpg.Connection, cipher: FieldCipher, code: str, application_ids: list[int]
) -> list[Decision]:
    """Decide every still-'received' application among `application_ids` (inside tenant_transaction)."""
    apps = await conn.fetch(LOAD, code, application_ids)
    if not apps:
        return []
    members = await household_keys(conn, code, list({a["entitlement_id"] for a in apps}))
    holders, keys, proxies = {}, {}, {}
    for a in apps:
        app_id = a["application_id"]
        holders[app_id] = holder_key(cipher.decrypt_str("applications", "holder_kana", app_id, a["holder_kana_enc"]))
        if a["pay_to_proxy"] and a["proxy_enc"] is not None:
            proxy = json.loads(cipher.decrypt_str("application_proxies", "proxy", app_id, a["proxy_enc"]))
            proxies[app_id] = holder_key(proxy["kana"])
        number = cipher.decrypt_str("applications", "account_number", app_id, a["account_number_enc"])
        keys[app_id] = account_key(cipher, a["bank_code"], a["branch_code"], a["account_type"], number)
    # The same account may not be decided concurrently by two transactions (see module docstring).
    await conn.execute(LOCK_KEYS, sorted({int.from_bytes(k[:8], "big", signed=True) for k in keys.values()}))
    users: dict[bytes, set[str]] = {}
    for row in await conn.fetch(SHARED, code, list(set(keys.values()))):
        users.setdefault(bytes(row["account_key"]), set()).add(row["household_no"])
    for a in apps:  # within this batch too
        users.setdefault(keys[a["application_id"]], set()).add(a["household_no"])
    decisions = []
    for a in apps:
        app_id = a["application_id"]
        shared = len(users[keys[app_id]] - {a["household_no"]}) > 0
        reasons = decide(a, holders[app_id], members.get(a["entitlement_id"], {}), shared, proxies.get(app_id))
        decisions.append(Decision(app_id, _status(reasons), reasons))
    await conn.execute(
        SAVE,
        code,
        [d.application_id for d in decisions],
        [d.status for d in decisions],
        [",".join(d.reasons) for d in decisions],
    )
    by_id = {a["application_id"]: a for a in apps}
    await conn.execute(
        CLAIM, code, [by_id[d.application_id]["entitlement_id"] for d in decisions if d.status != "rejected"]
    )
    await conn.execute(
        SAVE_KEYS, code, [d.application_id for d in decisions], [keys[d.application_id] for d in decisions]
    )
    return decisions
