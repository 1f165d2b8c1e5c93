"""The outbox directory's disk full while `kyufu payouts release` writes the sealed file (issue 7): a real
filesystem (a tmpfs sized so the file cannot fit), mounted over the municipality's outbox directory.

Ends with tests/chaos/invariants.check."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import subprocess
import time

import pytest

from tests.chaos import invariants
from tests.chaos.batches import approved_release, as_the_bank, release_state
from tests.chaos.harness import CODE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# ~2.4 MB of plaintext: far more than the first filesystem holds, and more than one chunk of the batch's
# COPY (payouts/pipeline.py CHUNK_BYTES), so the disk fills while rows are still streaming.
PAYMENTS = 20_000


def _resize(directory, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(directory)], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def small_filesystem(directory, options: str):
    """A tmpfs mounted over `directory` (unmounted at the end, whatever happens)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"{options},mode=0700", "tmpfs", str(directory)],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root or CAP_SYS_ADMIN): {detail.strip()}")
    try:
        yield
    finally:
        if subprocess.run(["umount", str(directory)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], check=True, capture_output=True)  # busy: detach


async def test_outbox_disk_full_release_fails_cleanly_then_succeeds_with_space(cluster):
    """On a full outbox filesystem the release fails with a Japanese message and leaves no file, partial or
    temp, and nothing recorded — also when the ciphertext fits but its manifest does not; once there is
    space the same release writes the approved file, once."""
    settings = cluster.settings
    batch, reference, approved, release = await approved_release(cluster, CODE, PAYMENTS)

    async def refused(name: str) -> str:
        code, out = await asyncio.to_thread(cluster.run_cli, name, *release)
        assert code == 2 and "ディスクに空きがない" in out, out[-2000:]
        assert "Traceback" not in out, out[-2000:]
        assert cluster.outbox_files() == [], "a partial, lone or temp file was left in the outbox"
        state = await release_state(cluster.pool, CODE, batch.batch_id)
        assert (state["status"], state["released_sha256"], state["releases"]) == ("approved", None, 0)
        return out

    with small_filesystem(cluster.outbox, "size=64k,nr_inodes=64"):
        # 64 KiB for ~2.4 MB of ciphertext: ENOSPC part-way through writing it.
        await refused("release-full")
        # Room for the ciphertext but for one file only: the .age is written and renamed into place, then
        # creating its manifest fails with ENOSPC (no inode left; age's random header padding makes the
        # ciphertext's exact size unknowable beforehand, so bytes cannot be sized this precisely).
        _resize(cluster.outbox, "size=64m,nr_inodes=2")
        await refused("release-no-room-for-manifest")

        _resize(cluster.outbox, "size=64m,nr_inodes=64")
        started = time.monotonic()
        code, out = await asyncio.to_thread(cluster.run_cli, "release-with-space", *release)
        release_s = time.monotonic() - started
        assert code == 0, out[-2000:]
        plaintext, file_name = await as_the_bank(
            settings.database_owner_url, settings, batch, cluster.outbox, cluster.root
        )
        assert plaintext == reference and hashlib.sha256(plaintext).hexdigest() == approved
        assert cluster.outbox_files() == [file_name + ".age", file_name + ".manifest.json"]
    state = await release_state(cluster.pool, CODE, batch.batch_id)
    assert (state["status"], state["released_sha256"], state["releases"]) == ("released", approved, 1)
    await invariants.check(cluster.pool, CODE, [], 0)
    print(f"{PAYMENTS} payments; released with space in {release_s:.1f} s")
