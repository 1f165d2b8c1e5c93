"""Demo bank settings: the municipality's bank contract and a bank age identity on disk, idempotently."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from app.tenancy.municipalities import signing_public_key
from app.tenancy.transaction import tenant_transaction
from payouts import bank, sealing, settings_store, zengin

IDENTITY_FILE = "bank-identity.txt"


def _recipient_of(path: Path) -> str:
    for line in path.read_text(encoding="ascii").splitlines():
        if line.startswith("# public key: "):
            return line.split(": ", 1)[1].strip()
    raise ValueError(f"{path} に公開鍵の行（# public key: ...）がありません。")


async def seed_demo_bank(conn: asyncpg.Connection, settings, code: str, out_dir: Path) -> list[str]:
    """Set demo bank settings for `code` with an age recipient whose identity is written to out_dir.

    `conn` is outside a transaction (owner or app role). Re-running keeps the identity (a new one would
    make earlier demo files unreadable) and rewrites the same settings."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    identity = out_dir / IDENTITY_FILE
    recipient = _recipient_of(identity) if identity.exists() else bank.write_identity_file(identity)
    stored = settings_store.StoredBankSettings(
        bank=zengin.BankSettings(
            requester_code="1310160001",
            requester_name_kana="ﾁﾖﾀﾞｸ ｶｲｹｲｶﾝﾘｼﾔ",
            bank_code="0001",
            bank_name_kana="ﾐｽﾞﾎ",
            branch_code="001",
            branch_name_kana="ﾄｳｷﾖｳ",
            account_type=1,
            account_number="1234567",
            separator="crlf",
        ),
        age_recipients=(recipient,),
    )
    async with tenant_transaction(conn, code):
        await settings_store.put_bank_settings(conn, code, stored)
        raw_public = await signing_public_key(conn, code)
    # What the platform publishes for the bank: the municipality's manifest-signing public key.
    public_pem = out_dir / f"municipality-{code}-signing.pub.pem"
    public_pem.write_bytes(sealing.public_key_pem_from_raw(raw_public))
    return [
        f"bank age identity (demo bank's secret key): {identity}",
        f"municipality's signing public key: {public_pem}",
        f"released files: {Path(settings.outbox_path) / code}/*.age — decrypt with: "
        f"age -d -i {identity} -o FILE.txt FILE.age (the plaintext is CP932 Zengin records: a file, not the "
        "terminal), or verify everything: kyufu bank verify FILE.age FILE.manifest.json "
        f"--public-key {public_pem} --identity {identity}",
    ]
