"""Who acts on staff accounts: a signed-in admin (`Staff`) or a named platform operator at the CLI.

The database records either as a pair of columns (`*_by` staff id, `*_by_operator` name), exactly one of
them set, and compares them as one principal text (kyufu_principal in migrations/0014_staff_enrolment.sql).
An operator's name is what they typed (`--operator`): the platform cannot prove it, which is why an
operator can issue enrolments and request roles but never confirm one (app/staff/grants.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.staff.accounts import Staff

OPERATOR_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Operator:
    """A platform operator running `kyufu staff ...` (recorded as `cli:<name>` in the audit trail)."""

    name: str

    def __post_init__(self) -> None:
        if not OPERATOR_NAME.fullmatch(self.name):
            raise ValueError("operator name: 1-64 of a-z 0-9 . _ - (starting with a letter or digit)")

    @property
    def label(self) -> str:
        return f"cli:{self.name}"


Actor = Staff | Operator


def columns(actor: Actor) -> tuple[int | None, str | None]:
    """(staff id, operator name) for the `*_by`, `*_by_operator` column pair."""
    if isinstance(actor, Operator):
        return None, actor.name
    return actor.staff_id, None


def audit_actor(actor: Actor) -> tuple[Staff | None, str | None]:
    """(actor, actor_label) arguments for audit.append."""
    if isinstance(actor, Operator):
        return None, actor.label
    return actor, None


def label(staff_id: int | None, operator: str | None, logins: dict[int, str] | None = None) -> str:
    """How a recorded principal is shown to an admin."""
    if operator is not None:
        return f"運用者 {operator}（CLI）"
    if staff_id is None:
        return "—"
    return (logins or {}).get(staff_id, f"職員 #{staff_id}")
