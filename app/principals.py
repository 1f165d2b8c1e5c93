"""Who acts: the signed-in staff member, as every domain sees them (payouts drafts and approves as a
`Staff`, the audit log records one). Sign-in, enrolment and role grants are the console's business
(app/staff/); this is only the identity and its roles, so that domains need not import the console.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from app.errors import Forbidden

# keyer (入力): keys returned paper forms (app/intake/paper.py; migration 0024).
ROLES = ("reviewer", "drafter", "approver", "admin", "keyer")
ROLE_LABELS = {"reviewer": "審査", "drafter": "起案", "approver": "承認", "admin": "管理者", "keyer": "入力"}


@dataclass(frozen=True)
class Staff:
    """The signed-in staff member. Everything they do is scoped to `municipality_code`."""

    staff_id: int
    municipality_code: str
    login: str
    display_name: str
    roles: tuple[str, ...]

    def has(self, role: str) -> bool:
        return role in self.roles

    def require(self, *roles: str) -> None:
        """Refuse unless the staff member holds at least one of `roles`."""
        if not any(r in self.roles for r in roles):
            labels = "・".join(ROLE_LABELS[r] for r in roles)
            raise Forbidden(f"この操作には{labels}の権限が必要です。")

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Staff:
        return cls(row["staff_id"], row["municipality_code"], row["login"], row["display_name"], tuple(row["roles"]))
