"""Fault 6 of issue 17: the worker node that sealed a released file dies, its disk with it, before the bank
fetched the file; the file is still delivered, byte for byte what was signed, by the other worker
(payouts/delivery.py: the release kept it in PostgreSQL, synchronously replicated, in its own transaction).

The bank's endpoint is down while the release happens (its inbox path is unusable), so the file cannot
have left with the node that made it."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time

import pytest

from app.tenancy.transaction import tenant_transaction
from tests.chaos.batches import approved_release, as_the_bank, release_state
from tests.cluster.conftest import CODE
from tests.cluster.test_release_failover import _request_release

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(600)]

PAYMENTS = 5_000
KEPT = """
SELECT delivered_at IS NOT NULL AS delivered, ciphertext_bytes,
       (SELECT count(*) FROM released_file_parts p WHERE p.municipality_code = f.municipality_code
                                                     AND p.batch_id = f.batch_id) AS parts
FROM released_files f WHERE municipality_code = $1 AND batch_id = $2
"""


async def test_worker_that_sealed_the_file_lost_before_delivery_the_other_delivers_it(ha):
    batch, reference, approved, _ = await approved_release(ha, CODE, PAYMENTS)
    ha.stop("worker2")
    ha.bank_drop.mkdir(parents=True, exist_ok=True)
    ha.outbox.write_text("the bank's endpoint is down")  # a file where the inbox should be: no delivery
    await _request_release(ha, batch)
    started = time.monotonic()
    while (await release_state(ha.pool, CODE, batch.batch_id))["status"] != "released":
        assert time.monotonic() - started < 120, "not released: " + ha.log_tail("worker1")
        await asyncio.sleep(0.2)
    sealed_on_worker1 = list((ha.root / "worker1" / "outbox" / CODE).glob("*.age"))
    assert len(sealed_on_worker1) == 1  # worker1 sealed it on its own disk
    async with tenant_transaction(ha.pool, CODE, readonly=True) as conn:
        kept = await conn.fetchrow(KEPT, CODE, batch.batch_id)
    assert kept is not None and not kept["delivered"] and kept["parts"] >= 1
    assert kept["ciphertext_bytes"] == sealed_on_worker1[0].stat().st_size

    ha.kill("worker1")  # the machine is gone, and its disk with it
    shutil.rmtree(ha.root / "worker1" / "outbox")
    lost_at = time.monotonic()
    ha.outbox.unlink()  # the bank's endpoint is back
    ha.start("worker2")
    while not (ha.outbox.is_dir() and [n for n in ha.outbox_files() if n.endswith(".manifest.json")]):
        assert time.monotonic() - lost_at < 180, "not delivered: " + ha.log_tail("worker2")
        await asyncio.sleep(0.2)
    delivered_s = time.monotonic() - lost_at

    plaintext, file_name = await as_the_bank(ha.settings.database_owner_url, ha.settings, batch, ha.outbox, ha.root)
    assert plaintext == reference and hashlib.sha256(plaintext).hexdigest() == approved
    assert ha.outbox_files() == [file_name + ".age", file_name + ".manifest.json"]
    state = await release_state(ha.pool, CODE, batch.batch_id)
    assert (state["status"], state["released_sha256"], state["releases"]) == ("released", approved, 1)
    async with tenant_transaction(ha.pool, CODE, readonly=True) as conn:
        assert (await conn.fetchrow(KEPT, CODE, batch.batch_id))["delivered"]
        ciphertext = await conn.fetchval(
            "SELECT ciphertext_sha256 FROM payout_batches WHERE municipality_code = $1 AND batch_id = $2",
            CODE,
            batch.batch_id,
        )
    # The very bytes that were sealed and signed, not a second encryption of the same plaintext.
    assert hashlib.sha256((ha.outbox / (file_name + ".age")).read_bytes()).hexdigest() == ciphertext
    print(
        f"\nworker that sealed the file SIGKILLed, its disk removed, before delivery ({PAYMENTS} payments):"
        f" the other worker delivered the signed file {delivered_s:.1f} s later"
    )
