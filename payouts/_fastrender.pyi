# Types of the C extension payouts/_fastrender.c (built by setup.py), for the type checker.
# Callers: payouts/_chunk.py (render: render_chunk, _c_layout) and payouts/sealing.py (references:
# ReferenceDigest); keep this in step with the PyArg_ParseTuple formats there (render: "y*" x 9, "p",
# "n" x 7; references: "y*", "n", "p", "y*").
from typing_extensions import Buffer

def render(
    data: Buffer,
    key: Buffer,
    header: Buffer,
    aad_prefix: Buffer,
    template: Buffer,
    sep: Buffer,
    ascii_ok: Buffer,
    kana_ok: Buffer,
    types_ok: Buffer,
    edi: bool,
    bank_at: int,
    branch_at: int,
    type_at: int,
    account_at: int,
    name_at: int,
    amount_at: int,
    ref_at: int,
    /,
) -> tuple[bytes, int, int, int] | None:
    """COPY text rows (payment_id, bank_code, branch_code, account_type, bank_enc, amount_yen) as Zengin data
    records: (records, count, total_yen, last_payment_id), or None whenever any row is not valid and in the
    common shape (the Python path then decides). Raises ValueError for layout arguments out of range."""

def references(data: Buffer, width: int, edi: bool, previous: Buffer, /) -> tuple[bytes, bytes] | None:
    """Whole Zengin data records (width 120 or 122) → (b"<10 digits>\\n" per record, the last 10 digits), each
    reference above the one before and the first above `previous`; None for anything else (the Python
    reader then names the fault)."""
