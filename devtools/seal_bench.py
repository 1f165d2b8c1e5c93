"""Benchmark: peak memory of seal_batch on a large plaintext made by a chunk iterator.

    .venv/bin/python -m devtools.seal_bench --mb 200            # streaming (seal_batch)
    .venv/bin/python -m devtools.seal_bench --mb 200 --in-memory  # control: join, then encrypt

Prints one JSON line: plaintext size, seconds, and peak RSS growth over the baseline taken
after imports and key generation. Run it in a fresh process: ru_maxrss is a high-water mark
of the whole process, so anything run before would hide the figure. The test suite runs it
as a subprocess (tests/payouts/test_sealing.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyrage
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyrage import x25519

from payouts import sealing

_CHUNK_BYTES = 1024 * 1024


def _chunks(total_bytes: int) -> Iterator[bytes]:
    """Distinct 1 MiB chunks (a counter in each), so nothing can be deduplicated or cached."""
    filler = b"2" + b"0" * (_CHUNK_BYTES - 1)
    for index in range(total_bytes // _CHUNK_BYTES):
        yield index.to_bytes(8, "big") + filler[8:]


def _peak_rss_mb() -> float:
    # VmHWM is this address space's high-water mark. ru_maxrss is not enough: Linux carries it across
    # fork+exec, so a child of a large parent (pytest after many tests) starts with the parent's peak.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run(megabytes: int, in_memory: bool) -> dict:
    total = megabytes * _CHUNK_BYTES
    approved = hashlib.sha256()
    for chunk in _chunks(total):
        approved.update(chunk)
    recipient = str(x25519.Identity.generate().to_public())
    key = Ed25519PrivateKey.generate()
    baseline = _peak_rss_mb()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as outbox:
        if in_memory:
            ciphertext = pyrage.encrypt(b"".join(_chunks(total)), [x25519.Recipient.from_str(recipient)])
            Path(outbox, "x.age").write_bytes(ciphertext)
            del ciphertext
        else:
            sealing.seal_batch(
                outbox_dir=Path(outbox),
                name="bench.txt",
                plaintext_chunks=_chunks(total),
                recipients=[recipient],
                signing_key=key,
                municipality_code="131016",
                batch_id="bench",
                transfer_date=dt.date(2026, 4, 1),
                record_count=1,
                total_yen=1,
                approved_by="bench",
                approved_sha256=approved.hexdigest(),
            )
    return {
        "plaintext_mb": megabytes,
        "mode": "in-memory" if in_memory else "streaming",
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_growth_mb": round(_peak_rss_mb() - baseline, 1),
        "baseline_rss_mb": round(baseline, 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--in-memory", action="store_true", help="control: the non-streaming way")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.mb, args.in_memory)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
