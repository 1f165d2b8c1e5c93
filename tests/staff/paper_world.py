"""A municipality for the paper intake tests: a 確認書型 program whose households (two members each) have
letters with real 確認書番号 (check symbol and all), two keying clerks, a reviewer and an admin."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.intake import paper
from app.registry.letters import format_access_code, new_access_code
from app.tenancy.transaction import tenant_transaction
from tests.intake.helpers import make_letters
from tests.staff.conftest import World, build_world, make_staff

SET_CODE = "UPDATE letters SET access_code = $3 WHERE municipality_code = $1 AND letter_id = $2"


@dataclass
class Household:
    entitlement_id: int
    access_code: str  # as printed: XXXX-XXXX-XXXX

    def form(self, **changes: str | list[str]) -> dict:
        """The paper form of this household, filled in completely and correctly, as a clerk keys it."""
        data: dict = {
            "identifier": self.access_code,
            "members": "12",
            "bank_code": "0001",
            "branch_code": "001",
            "account_type": "1",
            "account_number": f"{self.entitlement_id % 10_000_000:07d}",
            "holder_kana": "ヤマダ タロウ",
            "id_document": "1",
            "account_document": "1",
        }
        data.update(changes)
        return data


async def paper_world(app_pool, municipality, settings, households: int = 3) -> tuple[World, int, list[Household]]:
    """(world, program id, households). Staff: admin, rev (reviewer), keyer1, keyer2 (keyer), both (keyer
    and reviewer)."""
    world = await build_world(app_pool, await municipality(), settings, applications=0)
    async with tenant_transaction(app_pool, world.code) as conn:
        for login, roles in (("keyer1", ["keyer"]), ("keyer2", ["keyer"]), ("both", ["keyer", "reviewer"])):
            await make_staff(conn, world, login, roles)
    letters = await make_letters(app_pool, settings.master_key_bytes, world.code, households)
    out = []
    async with tenant_transaction(app_pool, world.code) as conn:
        for letter in letters:
            code = new_access_code()
            await conn.execute(SET_CODE, world.code, letter.letter_id, code)
            out.append(Household(letter.entitlement_id, format_access_code(code)))
    return world, letters[0].program_id, out


async def receive(app_pool, world: World, program_id: int, forms: int, box_no: str = "B-0001") -> list[int]:
    """A box of `forms` received by keyer1; the forms' ids by 通番."""
    async with tenant_transaction(app_pool, world.code) as conn:
        box_id = await paper.receive_box(
            conn, world.code, world.staff["keyer1"], program_id, box_no, dt.date(2026, 5, 1), forms
        )
        return [
            r["form_id"]
            for r in await conn.fetch(
                "SELECT form_id FROM paper_forms WHERE municipality_code = $1 AND box_id = $2 ORDER BY seq",
                world.code,
                box_id,
            )
        ]


async def key(app_pool, world: World, login: str, form_id: int, data: dict) -> paper.Keyed:
    async with tenant_transaction(app_pool, world.code) as conn:
        return await paper.key_entry(conn, world.settings, world.code, world.staff[login], form_id, data)
