"""Sample rows for paper intake (migrations/0024_paper_intake.sql)."""

from __future__ import annotations

import secrets

from tests.samples.domain import program, staff
from tests.tenancy_samples import sample


async def box(conn, code) -> int:
    return await conn.fetchval(
        "INSERT INTO paper_boxes (municipality_code, program_id, box_no, received_on, form_count, received_by)"
        " VALUES ($1, $2, $3, '2026-05-01', 1, $4) RETURNING box_id",
        code,
        await program(conn, code),
        f"S-{secrets.token_hex(4).upper()}",
        await staff(conn, code),
    )


async def form(conn, code) -> int:
    return await conn.fetchval(
        "INSERT INTO paper_forms (municipality_code, box_id, seq) VALUES ($1, $2, 1) RETURNING form_id",
        code,
        await box(conn, code),
    )


@sample("paper_boxes")
async def _box(conn, code):
    await box(conn, code)


@sample("paper_forms")
async def _form(conn, code):
    await form(conn, code)


@sample("paper_entries")
async def _entry(conn, code):
    # Everything illegible: the smallest row the constraints accept.
    await conn.execute(
        "INSERT INTO paper_entries (municipality_code, form_id, entry_no, keyed_by, id_document, account_document,"
        " illegible) VALUES ($1, $2, 1, $3, false, false, '{identifier,members,account,holder}')",
        code,
        await form(conn, code),
        await staff(conn, code),
    )


@sample("paper_deficiencies")
async def _deficiency(conn, code):
    await conn.execute(
        "INSERT INTO paper_deficiencies (municipality_code, form_id, codes, recorded_by)"
        " VALUES ($1, $2, '{identifier_illegible}', $3)",
        code,
        await form(conn, code),
        await staff(conn, code),
    )
