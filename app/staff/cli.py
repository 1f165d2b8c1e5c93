"""`kyufu staff ...` and `kyufu audit ...` (registered by app/cli.py).

These run as the app role inside tenant_transaction, like the console, and each action they take on
staff accounts is an audit entry with the operator recorded as "cli".
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from contextlib import asynccontextmanager

import asyncpg
import pyotp

from app.settings import Settings, require
from app.staff import accounts, audit, sessions, signin
from app.tenancy.codes import MunicipalityCodeError, validate_code
from app.tenancy.municipalities import load_field_cipher
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
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM municipalities WHERE code = $1)", code):
                raise CliError(f"municipality {code} is not registered")
            yield conn
    finally:
        await conn.close()


async def _staff_id(conn, code: str, login: str) -> int:
    staff_id = await conn.fetchval("SELECT staff_id FROM staff_users WHERE municipality_code = $1 AND login = $2",
                                   code, login)
    if staff_id is None:
        raise CliError(f"no staff login {login!r} in {code}")
    return staff_id


async def _add(args, settings: Settings) -> list[str]:
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    password = args.password or secrets.token_urlsafe(12)
    async with _scope(settings, args.municipality) as conn:
        try:
            staff_id = await accounts.create_staff(conn, args.municipality, args.login, args.name, roles, password)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if staff_id is None:
            raise CliError(f"login {args.login!r} already exists in {args.municipality}")
        lines = [f"created {args.login} ({','.join(roles)}) in {args.municipality}"]
        if not args.password:
            lines.append(f"password: {password}")
        if accounts.TOTP_ROLES & set(roles):
            cipher = await load_field_cipher(conn, settings.master_key_bytes, args.municipality)
            secret = await accounts.enroll_totp(conn, cipher, args.municipality, staff_id)
            lines.append(f"TOTP secret (add to an authenticator app): {secret}")
            lines.append(accounts.totp_uri(secret, args.municipality, args.login))
        await audit.append(conn, args.municipality, None, "staff.create", "staff", staff_id,
                           {"login": args.login, "roles": roles}, actor_label=CLI_ACTOR)
    return lines


async def _list(args, settings: Settings) -> list[str]:
    async with _scope(settings, args.municipality, readonly=True) as conn:
        rows = await accounts.list_staff(conn, args.municipality)
    return [
        f"{r['login']}\t{','.join(r['roles'])}\t{'disabled' if r['disabled_at'] else 'locked' if r['locked'] else 'active'}"
        f"\t{'totp' if r['has_totp'] else 'no-totp'}" for r in rows
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
            await audit.append(conn, args.municipality, None, "audit.export", "audit_log", "",
                               {"format": args.format}, actor_label=CLI_ACTOR)
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


def register(sub) -> None:
    p = sub.add_parser("staff", help="staff accounts of a municipality")
    ssub = p.add_subparsers(dest="action", required=True)
    add = ssub.add_parser("add", help="create a staff account (prints a generated password and TOTP secret)")
    add.add_argument("--municipality", required=True)
    add.add_argument("--login", required=True)
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--roles", required=True, help="comma-separated: reviewer,drafter,approver,admin")
    add.add_argument("--password", help="default: generate one and print it")
    add.set_defaults(func=_run(_add))
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
