"""Benefit programs (給付事業): definition, validation, lookup."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import asyncpg
from pydantic import BaseModel, Field, ValidationError, model_validator

from app.registry.errors import InvalidProgram, ProgramNotFound

# Field names as staff know them, for error messages.
FIELD_LABELS = {
    "name": "給付名",
    "base_date": "基準日",
    "unit": "支給単位",
    "amount_yen": "支給額（円）",
    "child_amount_yen": "子ども加算額（円）",
    "child_age_under": "子どもの年齢（未満）",
    "tax_condition": "課税要件",
    "tax_fiscal_year": "課税年度",
    "min_age": "下限年齢",
    "max_age": "上限年齢",
    "apply_from": "申請開始日",
    "apply_until": "申請期限",
    "payment_mode": "支給方式",
    "decline_deadline": "辞退期限",
}

INSERT_PROGRAM = """
INSERT INTO programs (municipality_code, name, base_date, unit, amount_yen, child_amount_yen, child_age_under,
    tax_condition, tax_fiscal_year, min_age, max_age, apply_from, apply_until, payment_mode, decline_deadline)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
RETURNING program_id
"""
PROGRAM_COLUMNS = """program_id, name, base_date, unit, amount_yen, child_amount_yen, child_age_under, tax_condition,
    tax_fiscal_year, min_age, max_age, apply_from, apply_until, payment_mode, decline_deadline, national_scheme"""
GET_PROGRAM = f"SELECT {PROGRAM_COLUMNS} FROM programs WHERE municipality_code = $1 AND program_id = $2"
LOCK_PROGRAM = GET_PROGRAM + " FOR UPDATE"
LIST_PROGRAMS = f"SELECT {PROGRAM_COLUMNS} FROM programs WHERE municipality_code = $1 ORDER BY program_id"


class ProgramSpec(BaseModel):
    """A program as an admin defines it. Amounts are whole yen."""

    name: str = Field(min_length=1, max_length=200)
    base_date: dt.date
    unit: Literal["person", "household"]
    amount_yen: int = Field(gt=0, le=10_000_000)
    child_amount_yen: int | None = Field(None, gt=0, le=10_000_000)
    child_age_under: int = Field(18, ge=1, le=30)
    tax_condition: Literal["none", "exempt", "exempt_or_per_capita"] = "none"
    tax_fiscal_year: int | None = Field(None, ge=2000, le=2100)
    min_age: int | None = Field(None, ge=0, le=150)
    max_age: int | None = Field(None, ge=0, le=150)
    apply_from: dt.date | None = None
    apply_until: dt.date | None = None
    payment_mode: Literal["application", "letter", "push"]
    decline_deadline: dt.date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ProgramSpec:
        if self.tax_condition != "none" and self.tax_fiscal_year is None:
            raise ValueError("課税要件を指定するときは課税年度が必要です。")
        if self.payment_mode == "push" and self.decline_deadline is None:
            raise ValueError("プッシュ型には辞退期限が必要です。")
        if self.apply_from and self.apply_until and self.apply_until < self.apply_from:
            raise ValueError("申請期限が申請開始日より前です。")
        if self.min_age is not None and self.max_age is not None and self.max_age < self.min_age:
            raise ValueError("上限年齢が下限年齢より小さいです。")
        return self


def parse_program(data: dict) -> ProgramSpec:
    """Validate a program definition; InvalidProgram names every bad field in Japanese."""
    try:
        return ProgramSpec.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            field = ".".join(str(x) for x in err["loc"])
            label = FIELD_LABELS.get(field, field)
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"{label}: {msg}" if label else msg)
        raise InvalidProgram("給付の定義が正しくありません。 " + " / ".join(parts)) from None


async def create_program(conn: asyncpg.Connection, code: str, spec: ProgramSpec) -> int:
    return await conn.fetchval(
        INSERT_PROGRAM,
        code,
        spec.name,
        spec.base_date,
        spec.unit,
        spec.amount_yen,
        spec.child_amount_yen,
        spec.child_age_under,
        spec.tax_condition,
        spec.tax_fiscal_year,
        spec.min_age,
        spec.max_age,
        spec.apply_from,
        spec.apply_until,
        spec.payment_mode,
        spec.decline_deadline,
    )


async def get_program(conn: asyncpg.Connection, code: str, program_id: int, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow(LOCK_PROGRAM if lock else GET_PROGRAM, code, program_id)
    if row is None:
        raise ProgramNotFound(f"給付 {program_id} はこの自治体にありません。")
    return row


async def list_programs(conn: asyncpg.Connection, code: str) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_PROGRAMS, code)
