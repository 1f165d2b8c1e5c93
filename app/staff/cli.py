"""`kyufu staff ...` and `kyufu audit ...` (registered by app/cli.py).

These run as the app role inside tenant_transaction, like the console, and each action they take on
staff accounts is an audit entry with the operator recorded as "cli" (or "cli:NAME" with --operator).
An operator creates accounts, bootstraps a municipality's first admins, resets credentials and requests
roles; they never see a password or TOTP secret (they print an enrolment link for the person) and never
confirm a role (a console admin does): see app/staff/grants.py for why and what remains.
"""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import asynccontextmanager

import asyncpg
import pyotp

from app import audit
from app.settings import Settings, require
from app.staff import accounts, enrolment, grants, sessions, signin
from app.staff.actors import Operator
from app.staff.errors import StaffError
from app.tenancy.codes import MunicipalityCodeError, validate_code
from app.tenancy.municipalities import get_municipality, load_field_cipher
from app.tenancy.transaction import tenant_transaction

CLI_ACTOR = "cli"


class CliError(Exception):
    """Printed as one line; exit status 2."""


@asynccontextmanager
async def _scope(settings: Settings, code: str, **kwargs):
    try:
        validate_code(code)
    except MunicipalityCodeError as exc:
        raise CliError(str(exc)) from None
    conn = await asyncpg.connect(require(settings.database_url, "DATABASE_URL"))
    try:
        async with tenant_transaction(conn, code, **kwargs):
            if await get_municipality(conn, code) is None:
                raise CliError(f"municipality {code} is not registered")
            yield conn
    finally:
        await conn.close()


async def _staff_id(conn, code: str, login: str) -> int:
    staff_id = await conn.fetchval(
        "SELECT staff_id FROM staff_users WHERE municipality_code = $1 AND login = $2", code, login
    )
    if staff_id is None:
        raise CliError(f"no staff login {login!r} in {code}")
    return staff_id


def _operator(args) -> Operator:
    try:
        return Operator(args.operator.strip().lower())
    except ValueError as exc:
        raise CliError(f"--operator: {exc}") from None


def _roles(text: str) -> list[str]:
    roles = [r.strip() for r in text.split(",") if r.strip()]
    unknown = sorted(set(roles) - set(accounts.ROLES))
    if unknown or not roles:
        raise CliError(f"--roles: choose one or more of {','.join(accounts.ROLES)} (unknown: {','.join(unknown)})")
    return roles


def _link_lines(settings: Settings, args, issued: enrolment.Issued) -> list[str]:
    base = (args.console_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    return [
        f"enrolment link for {issued.login} (hand it to that person only; single use, expires"
        f" {issued.expires_at.isoformat(timespec='minutes')}):",
        f"  {base}{issued.path}",
        "the person sets their own password (and TOTP for approver/admin) there; nobody else sees them",
    ]


async def _add(args, settings: Settings) -> list[str]:
    """A new account: the roles are requested (a console admin confirms them); the person enrols through
    the printed link. The operator never sees a password or TOTP secret."""
    operator, roles = _operator(args), _roles(args.roles)
    async with _scope(settings, args.municipality) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, args.municipality)
        issued = await _domain(
            enrolment.create_account(
                conn, cipher, args.municipality, operator, args.login.strip().lower(), args.name.strip(), roles
            )
        )
    return [
        f"created {issued.login} in {args.municipality}; roles requested (pending until a console admin"
        f" confirms them): {','.join(roles)}",
        *_link_lines(settings, args, issued),
    ]


async def _bootstrap(args, settings: Settings) -> list[str]:
    """The first admins of a municipality (refused once it has two enabled admins)."""
    operator = _operator(args)
    async with _scope(settings, args.municipality) as conn:
        cipher = await load_field_cipher(conn, settings.master_key_bytes, args.municipality)
        issued = await _domain(
            enrolment.create_account(
                conn,
                cipher,
                args.municipality,
                operator,
                args.login.strip().lower(),
                args.name.strip(),
                ["admin"],
                bootstrap=True,
            )
        )
    return [
        f"bootstrapped admin {issued.login} in {args.municipality} (allowed while it has fewer than two"
        " enabled admins)",
        *_link_lines(settings, args, issued),
    ]


async def _enroll(args, settings: Settings) -> list[str]:
    """Reset: a new enrolment link; the account's password, TOTP and sessions stop working now."""
    operator = _operator(args)
    async with _scope(settings, args.municipality) as conn:
        staff_id = await _staff_id(conn, args.municipality, args.login)
        cipher = await load_field_cipher(conn, settings.master_key_bytes, args.municipality)
        issued = await _domain(enrolment.issue(conn, cipher, args.municipality, operator, staff_id))
    return [
        f"reset {issued.login}: its password, TOTP and sessions no longer work",
        *_link_lines(settings, args, issued),
    ]


async def _grant(args, settings: Settings) -> list[str]:
    operator, roles = _operator(args), _roles(args.roles)
    async with _scope(settings, args.municipality) as conn:
        staff_id = await _staff_id(conn, args.municipality, args.login)
        ids = await _domain(grants.request(conn, args.municipality, operator, staff_id, roles))
    if not ids:
        return [f"{args.login} already has or has pending: {','.join(roles)}"]
    return [
        f"requested for {args.login}: {','.join(roles)} (grant ids {', '.join(map(str, ids))}); pending until"
        " a console admin confirms"
    ]


async def _domain(awaitable):
    """A domain refusal (StaffError) as one CLI line."""
    try:
        return await awaitable
    except StaffError as exc:
        raise CliError(exc.message) from None


async def _list(args, settings: Settings) -> list[str]:
    async with _scope(settings, args.municipality, readonly=True) as conn:
        rows = await accounts.list_staff(conn, args.municipality)
        pending = await grants.pending(conn, args.municipality)
    waiting: dict[int, list[str]] = {}
    for g in pending:
        waiting.setdefault(g["staff_id"], []).append(g["role"])
    return [
        f"{r['login']}\t{','.join(r['roles']) or '-'}"
        f"\t{'disabled' if r['disabled_at'] else 'locked' if r['locked'] else 'active'}"
        f"\t{'totp' if r['has_totp'] else 'no-totp'}"
        + (f"\tpending:{','.join(waiting[r['staff_id']])}" if r["staff_id"] in waiting else "")
        for r in rows
    ]


async def _revoke(args, settings: Settings) -> list[str]:
    async with _scope(settings, args.municipality) as conn:
        staff_id = await _staff_id(conn, args.municipality, args.login)
        n = await sessions.revoke_all(conn, args.municipality, staff_id)
        devices = await signin.revoke_devices(conn, args.municipality, staff_id)  # as the console's "revoke"
        await audit.append(conn, args.municipality, None, "staff.revoke", "staff", staff_id, actor_label=CLI_ACTOR)
    return [f"revoked {n} session(s) and {devices} trusted device(s) of {args.login}"]


async def _totp(args, settings: Settings) -> list[str]:
    if settings.production:
        raise CliError("`kyufu staff totp` shows a current code for demos and tests; it is disabled in production")
    async with _scope(settings, args.municipality, readonly=True) as conn:
        staff_id = await _staff_id(conn, args.municipality, args.login)
        cipher = await load_field_cipher(conn, settings.master_key_bytes, args.municipality)
        secret = await accounts.load_totp_secret(conn, cipher, args.municipality, staff_id)
    if secret is None:
        raise CliError(f"{args.login} has no TOTP secret")
    return [pyotp.TOTP(secret).at(time.time())]


async def _verify(args, settings: Settings) -> tuple[list[str], int]:
    async with _scope(settings, args.municipality, isolation="repeatable_read", readonly=True) as conn:
        report = await audit.verify_chain(conn, args.municipality)
    if report.ok:
        return [f"ok: {report.entries} entries, head {report.head_hash}"], 0
    return [f"BROKEN at seq {report.broken_at}: {report.reason} ({report.entries} entries verified before it)"], 1


async def _export(args, settings: Settings) -> list[str]:
    out = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout
    try:
        async with _scope(settings, args.municipality, isolation="repeatable_read") as conn:
            async for line in audit.export_lines(conn, args.municipality, args.format):
                out.write(line)
            # The export itself is an audited action (appended after the rows it exported).
            await audit.append(
                conn,
                args.municipality,
                None,
                "audit.export",
                "audit_log",
                "",
                {"format": args.format},
                actor_label=CLI_ACTOR,
            )
    finally:
        if args.out:
            out.close()
    return [f"exported to {args.out}"] if args.out else []


def _run(coro_fn):
    def command(args, settings: Settings) -> int:
        try:
            result = asyncio.run(coro_fn(args, settings))
        except CliError as exc:
            print(f"kyufu: {exc}", file=sys.stderr)
            return 2
        lines, status = result if isinstance(result, tuple) else (result, 0)
        for line in lines:
            print(line, file=sys.stderr if args.command == "audit" and args.action == "export" else sys.stdout)
        return status

    return command


def _who(parser) -> None:
    parser.add_argument("--municipality", required=True)
    parser.add_argument("--login", required=True)
    parser.add_argument(
        "--operator", required=True, help="your name as the platform operator (recorded in the audit trail as cli:NAME)"
    )
    parser.add_argument(
        "--console-url", help="the staff console's address for the printed link (default: http://KYUFU_HOST:KYUFU_PORT)"
    )


def register(sub) -> None:
    p = sub.add_parser("staff", help="staff accounts of a municipality")
    ssub = p.add_subparsers(dest="action", required=True)
    add = ssub.add_parser(
        "add",
        help="create a staff account: roles pending until a console admin confirms;"
        " prints a one-time enrolment link for the person",
    )
    _who(add)
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--roles", required=True, help="comma-separated: reviewer,drafter,approver,admin")
    add.set_defaults(func=_run(_add))
    boot = ssub.add_parser(
        "bootstrap-admin",
        help="a municipality's first admins (only while it has fewer than"
        " two enabled admins); prints an enrolment link",
    )
    _who(boot)
    boot.add_argument("--name", required=True, help="display name")
    boot.set_defaults(func=_run(_bootstrap))
    en = ssub.add_parser("enroll", help="reset a login's password and TOTP: prints a new enrolment link")
    _who(en)
    en.set_defaults(func=_run(_enroll))
    gr = ssub.add_parser("grant", help="request roles for a login (a console admin confirms them)")
    _who(gr)
    gr.add_argument("--roles", required=True, help="comma-separated: reviewer,drafter,approver,admin")
    gr.set_defaults(func=_run(_grant))
    ls = ssub.add_parser("list")
    ls.add_argument("--municipality", required=True)
    ls.set_defaults(func=_run(_list))
    rv = ssub.add_parser("revoke-sessions", help="end every session of a staff member and stop trusting their browsers")
    rv.add_argument("--municipality", required=True)
    rv.add_argument("--login", required=True)
    rv.set_defaults(func=_run(_revoke))
    tp = ssub.add_parser("totp", help="print the current TOTP code of a login (demo/test only)")
    tp.add_argument("--municipality", required=True)
    tp.add_argument("--login", required=True)
    tp.set_defaults(func=_run(_totp))

    p = sub.add_parser("audit", help="the tamper-evident audit trail")
    asub = p.add_subparsers(dest="action", required=True)
    v = asub.add_parser("verify", help="recompute the hash chain; exit 1 at the first broken link")
    v.add_argument("--municipality", required=True)
    v.set_defaults(func=_run(_verify))
    e = asub.add_parser("export", help="CSV or JSON Lines for the municipality's auditors")
    e.add_argument("--municipality", required=True)
    e.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    e.add_argument("--out", help="file to write (default: standard output)")
    e.set_defaults(func=_run(_export))
