"""payouts/sealing.py: age encryption, signed manifests, atomic files, seal_batch."""

from __future__ import annotations

import base64
import datetime as dt
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyrage
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyrage import x25519

from payouts import sealing
from payouts.sealing import ManifestError, SealingError

REPO = Path(__file__).resolve().parents[2]
PLAINTEXT = b"".join(bytes([i % 251]) * 1000 for i in range(300))  # 300 kB: several age chunks


def age_cli() -> str:
    # Fail, not skip: without the reference implementation nothing proves a bank can read us.
    path = shutil.which("age")
    assert path, "the age CLI is required (Debian package 'age'; the Makefile installs it)"
    return path


def write_identity(path: Path) -> tuple[x25519.Identity, str]:
    identity = x25519.Identity.generate()
    path.write_text(f"# test identity\n{identity}\n")
    return identity, str(identity.to_public())


def manifest_fields(**overrides) -> dict:
    fields = dict(
        municipality_code="131016",
        batch_id="B-2026-0001",
        file_name="furikomi.txt",
        transfer_date=dt.date(2026, 4, 1),
        record_count=3,
        total_yen=300_000,
        plaintext_sha256="a" * 64,
        ciphertext_sha256="b" * 64,
        ciphertext_size=1234,
        generated_at=dt.datetime(2026, 3, 30, 1, 2, 3, tzinfo=dt.UTC),
        approved_by="S0042 会計課 承認者",
        approved_sha256="a" * 64,
    )
    fields.update(overrides)
    return fields


# --- encryption -----------------------------------------------------------------------------


def test_age_cli_decrypts_our_output_exactly(tmp_path):
    """The real `age -d -i identity file.age` returns the plaintext byte for byte."""
    identity_path = tmp_path / "bank.key"
    _, recipient = write_identity(identity_path)
    encrypted = tmp_path / "f.age"
    with open(encrypted, "wb") as out:
        sealing.encrypt_for_recipients([PLAINTEXT[:70_000], PLAINTEXT[70_000:]], [recipient], out)
    result = subprocess.run(
        [age_cli(), "-d", "-i", str(identity_path), str(encrypted)], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == PLAINTEXT


def test_each_of_two_recipients_can_decrypt(tmp_path):
    """Bank and municipality archive each open the same file with only their own identity."""
    bank_path, archive_path = tmp_path / "bank.key", tmp_path / "archive.key"
    bank, bank_recipient = write_identity(bank_path)
    archive, archive_recipient = write_identity(archive_path)
    encrypted = tmp_path / "f.age"
    with open(encrypted, "wb") as out:
        sealing.encrypt_for_recipients(PLAINTEXT, [bank_recipient, archive_recipient], out)
    for identity_path, identity in ((bank_path, bank), (archive_path, archive)):
        assert pyrage.decrypt(encrypted.read_bytes(), [identity]) == PLAINTEXT
        result = subprocess.run([age_cli(), "-d", "-i", str(identity_path), str(encrypted)], capture_output=True)
        assert result.stdout == PLAINTEXT, result.stderr.decode()
    # A third party cannot: the file is not simply readable by anyone with an age key.
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(encrypted.read_bytes(), [x25519.Identity.generate()])


def test_returned_digest_is_the_plaintext_hash_whatever_the_chunking(tmp_path):
    """The single-pass hash equals sha256(plaintext) for bytes input and for odd chunk sizes."""
    _, recipient = write_identity(tmp_path / "k")
    expected = hashlib.sha256(PLAINTEXT).hexdigest()
    for plaintext in (PLAINTEXT, [PLAINTEXT[i : i + 8191] for i in range(0, len(PLAINTEXT), 8191)], [b"", PLAINTEXT]):
        with open(tmp_path / "f.age", "wb") as out:
            digest = sealing.encrypt_for_recipients(plaintext, [recipient], out)
        assert (digest.sha256, digest.size) == (expected, len(PLAINTEXT))


@pytest.mark.parametrize(
    "recipients",
    [
        ["age1notreallyakey"],
        ["AGE-SECRET-KEY-1QQQQ"],  # a secret key pasted where the public one belongs
        ["ssh-ed25519 AAAAC3Nza"],
        [],
    ],
)
def test_malformed_recipient_is_refused_in_japanese(recipients, tmp_path):
    with open(tmp_path / "f.age", "wb") as out, pytest.raises(SealingError, match="受取人"):
        sealing.encrypt_for_recipients(PLAINTEXT, recipients, out)


def test_bare_string_recipient_is_refused_not_split_into_letters(tmp_path):
    _, recipient = write_identity(tmp_path / "k")
    with open(tmp_path / "f.age", "wb") as out, pytest.raises(SealingError, match="リスト"):
        sealing.encrypt_for_recipients(PLAINTEXT, recipient, out)  # type: ignore[arg-type]


def test_the_bad_recipient_is_named_by_position(tmp_path):
    _, good = write_identity(tmp_path / "k")
    with open(tmp_path / "f.age", "wb") as out, pytest.raises(SealingError, match="2 番目"):
        sealing.encrypt_for_recipients(PLAINTEXT, [good, good[:-3] + "qqq"], out)


def test_an_error_in_the_plaintext_iterator_keeps_its_type(tmp_path):
    """pyrage would turn it into EncryptError text; callers need the OSError and its errno."""
    _, recipient = write_identity(tmp_path / "k")

    def chunks():
        yield PLAINTEXT
        raise OSError(errno.EIO, "disk read failed")

    with open(tmp_path / "f.age", "wb") as out, pytest.raises(OSError) as caught:
        sealing.encrypt_for_recipients(chunks(), [recipient], out)
    assert caught.value.errno == errno.EIO


class _FullDisk:
    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("size", [100, 300_000])
def test_a_full_disk_while_writing_ciphertext_is_raised(size, tmp_path):
    """For a small file pyrage 1.4.0 writes everything when it drops its buffer and ignores
    the error there (it returns success); the ENOSPC must reach the caller anyway."""
    _, recipient = write_identity(tmp_path / "k")
    with pytest.raises(OSError) as caught:
        sealing.encrypt_for_recipients(b"x" * size, [recipient], _FullDisk())  # type: ignore[arg-type]
    assert caught.value.errno == errno.ENOSPC


# --- manifest -------------------------------------------------------------------------------


def test_canonical_bytes_are_sorted_compact_utf8():
    manifest = sealing.Manifest(**manifest_fields())
    canonical = manifest.canonical_bytes()
    decoded = json.loads(canonical)
    assert list(decoded) == sorted(decoded)
    assert canonical == json.dumps(decoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert b'", "' not in canonical and b'": ' not in canonical  # no separator whitespace
    assert "会計課".encode() in canonical  # not \u-escaped
    assert decoded["generated_at"] == "2026-03-30T01:02:03Z"
    assert decoded["transfer_date"] == "2026-04-01"
    assert decoded["format"] == "zengin-21"


def test_sign_then_verify_returns_the_same_manifest():
    key = Ed25519PrivateKey.generate()
    manifest = sealing.Manifest(**manifest_fields())
    signed = sealing.sign_manifest(manifest, key)
    document = json.loads(signed)
    assert set(document) == {"manifest", "signature", "key_id"}
    assert document["key_id"] == sealing.key_id(key.public_key()) and len(document["key_id"]) == 16
    assert sealing.verify_manifest(signed, key.public_key()) == manifest


def _resign(signed: bytes, edit) -> bytes:
    document = json.loads(signed)
    edit(document)
    return json.dumps(document).encode()


def test_an_edited_total_breaks_the_signature():
    key = Ed25519PrivateKey.generate()
    signed = sealing.sign_manifest(sealing.Manifest(**manifest_fields()), key)
    edited = _resign(signed, lambda d: d["manifest"].update(total_yen=300_001))
    with pytest.raises(ManifestError) as caught:
        sealing.verify_manifest(edited, key.public_key())
    assert caught.value.reason == "bad_signature"


def test_a_manifest_signed_by_another_key_is_refused():
    signed = sealing.sign_manifest(sealing.Manifest(**manifest_fields()), Ed25519PrivateKey.generate())
    with pytest.raises(ManifestError) as caught:
        sealing.verify_manifest(signed, Ed25519PrivateKey.generate().public_key())
    assert caught.value.reason == "unknown_signing_key"


def test_claiming_the_right_key_id_does_not_help_a_forger():
    real, forger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    forged = sealing.sign_manifest(sealing.Manifest(**manifest_fields()), forger)
    forged = _resign(forged, lambda d: d.update(key_id=sealing.key_id(real.public_key())))
    with pytest.raises(ManifestError) as caught:
        sealing.verify_manifest(forged, real.public_key())
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"manifest": {}, "signature": "x"}',
        b'{"manifest": 1, "signature": "x", "key_id": "y"}',
        b"{" + b" " * (sealing.MAX_MANIFEST_BYTES + 1) + b"}",
    ],
)
def test_malformed_manifest_files_are_refused(payload):
    with pytest.raises(ManifestError) as caught:
        sealing.verify_manifest(payload, Ed25519PrivateKey.generate().public_key())
    assert caught.value.reason == "manifest_malformed"


def test_duplicate_keys_are_refused_even_if_signed_form_matches():
    """A second "total_yen" must not let a reader see a value other than the signed one."""
    key = Ed25519PrivateKey.generate()
    signed = sealing.sign_manifest(sealing.Manifest(**manifest_fields()), key).decode()
    doubled = signed.replace('"total_yen":300000', '"total_yen":999999,"total_yen":300000').encode()
    assert doubled != signed.encode()
    with pytest.raises(ManifestError) as caught:
        sealing.verify_manifest(doubled, key.public_key())
    assert caught.value.reason == "manifest_malformed"


def test_a_validly_signed_but_invalid_manifest_is_refused():
    """Signature checks out, but total_yen is a string: the signer's bug must not pass."""
    key = Ed25519PrivateKey.generate()
    raw = sealing.Manifest(**manifest_fields()).model_dump(mode="json") | {"total_yen": "300000"}
    body = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    document = {
        "manifest": raw,
        "signature": base64.b64encode(key.sign(body)).decode(),
        "key_id": sealing.key_id(key.public_key()),
    }
    with pytest.raises(ManifestError, match="total_yen") as caught:
        sealing.verify_manifest(json.dumps(document).encode(), key.public_key())
    assert caught.value.reason == "manifest_malformed"


def test_generated_at_must_be_utc():
    with pytest.raises(ValueError):
        sealing.Manifest(**manifest_fields(generated_at=dt.datetime(2026, 3, 30, 10, 0)))
    with pytest.raises(ValueError):
        sealing.Manifest(
            **manifest_fields(generated_at=dt.datetime(2026, 3, 30, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))))
        )


def test_public_key_pem_round_trip_and_refusals():
    key = Ed25519PrivateKey.generate()
    pem = sealing.public_key_pem(key)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert sealing.key_id(sealing.load_public_key(pem)) == sealing.key_id(key.public_key())
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for bad in (b"garbage", ec_pem):
        with pytest.raises(ManifestError) as caught:
            sealing.load_public_key(bad)
        assert caught.value.reason == "bad_public_key"


# --- atomic files ---------------------------------------------------------------------------


def test_write_atomically_writes_and_reports_hash_and_size(tmp_path):
    path, sha, size = sealing.write_atomically(tmp_path, "out.bin", [b"abc", b"", b"def"])
    assert path == tmp_path / "out.bin"
    assert path.read_bytes() == b"abcdef"
    assert (sha, size) == (hashlib.sha256(b"abcdef").hexdigest(), 6)
    assert os.listdir(tmp_path) == ["out.bin"]


def test_a_file_larger_than_the_writeback_step_is_written_whole(tmp_path):
    """Past WRITEBACK_BYTES the sink asks the kernel to start writing (posix_fadvise); the file and its
    digest are still exactly the bytes given, in odd-sized pieces across several steps."""
    step = sealing.WRITEBACK_BYTES
    data = os.urandom(1024) * (3 * step // 1024) + b"tail"
    pieces = [data[i : i + 777_777] for i in range(0, len(data), 777_777)]
    path, sha, size = sealing.write_atomically(tmp_path, "big.bin", pieces)
    assert path.read_bytes() == data
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))


def _failing_chunks(error: BaseException):
    yield b"x" * 100_000
    yield b"y" * 100_000
    raise error


def test_a_failing_iterator_leaves_neither_final_nor_temp_file(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        sealing.write_atomically(tmp_path, "out.bin", _failing_chunks(RuntimeError("boom")))
    assert os.listdir(tmp_path) == []


def test_enospc_midway_is_reraised_and_leaves_nothing(tmp_path):
    with pytest.raises(OSError) as caught:
        sealing.write_atomically(tmp_path, "out.bin", _failing_chunks(OSError(errno.ENOSPC, "No space left on device")))
    assert caught.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []


def test_a_failed_rewrite_keeps_the_previous_complete_file(tmp_path):
    sealing.write_atomically(tmp_path, "out.bin", [b"old complete"])
    with pytest.raises(OSError):
        sealing.write_atomically(tmp_path, "out.bin", _failing_chunks(OSError(errno.ENOSPC, "full")))
    assert (tmp_path / "out.bin").read_bytes() == b"old complete"
    assert os.listdir(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "a\\b", "", ".hidden", "x\x00y", "/etc/passwd"])
def test_unsafe_names_are_refused_before_anything_is_written(name, tmp_path):
    target = tmp_path / "outbox"
    target.mkdir()
    with pytest.raises(SealingError):
        sealing.write_atomically(target, name, [b"data"])
    assert os.listdir(target) == [] and os.listdir(tmp_path) == ["outbox"]


# --- seal_batch -----------------------------------------------------------------------------


def _seal(outbox: Path, recipients: list[str], key: Ed25519PrivateKey, plaintext: bytes = PLAINTEXT, **overrides):
    arguments = dict(
        outbox_dir=outbox,
        name="furikomi-20260401.txt",
        plaintext_chunks=(plaintext[i : i + 50_000] for i in range(0, len(plaintext), 50_000)),
        recipients=recipients,
        signing_key=key,
        municipality_code="131016",
        batch_id="B-2026-0001",
        transfer_date=dt.date(2026, 4, 1),
        record_count=3,
        total_yen=300_000,
        approved_by="S0042",
        approved_sha256=hashlib.sha256(plaintext).hexdigest(),
    )
    arguments.update(overrides)
    return sealing.seal_batch(**arguments)


def test_seal_batch_writes_a_verifiable_pair(tmp_path):
    identity_path = tmp_path / "bank.key"
    _, recipient = write_identity(identity_path)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    key = Ed25519PrivateKey.generate()
    manifest = _seal(outbox, [recipient], key)

    assert sorted(os.listdir(outbox)) == ["furikomi-20260401.txt.age", "furikomi-20260401.txt.manifest.json"]
    age_file = outbox / "furikomi-20260401.txt.age"
    signed = (outbox / "furikomi-20260401.txt.manifest.json").read_bytes()
    assert sealing.verify_manifest(signed, key.public_key()) == manifest
    assert manifest.ciphertext_sha256 == hashlib.sha256(age_file.read_bytes()).hexdigest()
    assert manifest.ciphertext_size == age_file.stat().st_size
    assert manifest.plaintext_sha256 == manifest.approved_sha256 == hashlib.sha256(PLAINTEXT).hexdigest()
    assert manifest.file_name == "furikomi-20260401.txt"
    assert manifest.generated_at.utcoffset() == dt.timedelta(0)
    result = subprocess.run([age_cli(), "-d", "-i", str(identity_path), str(age_file)], capture_output=True)
    assert result.stdout == PLAINTEXT, result.stderr.decode()


def test_seal_batch_refuses_a_plaintext_other_than_the_approved_one(tmp_path):
    """Four eyes: a file changed after approval is not published, not even half."""
    _, recipient = write_identity(tmp_path / "k")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    with pytest.raises(SealingError, match="承認"):
        _seal(outbox, [recipient], Ed25519PrivateKey.generate(), approved_sha256=hashlib.sha256(b"other").hexdigest())
    assert os.listdir(outbox) == []


def test_seal_batch_refuses_to_replace_a_sealed_batch(tmp_path):
    _, recipient = write_identity(tmp_path / "k")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    key = Ed25519PrivateKey.generate()
    _seal(outbox, [recipient], key)
    before = {p.name: p.read_bytes() for p in outbox.iterdir()}
    with pytest.raises(SealingError, match="既に封緘"):
        _seal(outbox, [recipient], key)
    assert {p.name: p.read_bytes() for p in outbox.iterdir()} == before


@pytest.mark.parametrize(
    "overrides",
    [{"municipality_code": "13101"}, {"total_yen": 0}, {"approved_sha256": "XYZ"}, {"recipients": ["age1bad"]}],
)
def test_seal_batch_checks_its_inputs_before_writing(overrides, tmp_path):
    _, recipient = write_identity(tmp_path / "k")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    consumed = []

    def chunks():
        consumed.append(True)
        yield PLAINTEXT

    with pytest.raises(SealingError):
        _seal(
            outbox,
            **(
                {"recipients": [recipient], "key": Ed25519PrivateKey.generate(), "plaintext_chunks": chunks()}
                | overrides
            ),
        )
    assert os.listdir(outbox) == [] and consumed == []


def test_seal_batch_enospc_while_encrypting_leaves_nothing(tmp_path):
    _, recipient = write_identity(tmp_path / "k")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    with pytest.raises(OSError) as caught:
        _seal(
            outbox,
            [recipient],
            Ed25519PrivateKey.generate(),
            plaintext_chunks=_failing_chunks(OSError(errno.ENOSPC, "full")),
        )
    assert caught.value.errno == errno.ENOSPC
    assert os.listdir(outbox) == []


def _bench(*arguments: str) -> dict:
    # A fresh interpreter: ru_maxrss is a process-lifetime high-water mark.
    result = subprocess.run(
        [sys.executable, "-m", "devtools.seal_bench", *arguments], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_sealing_200_mb_keeps_peak_memory_growth_under_100_mb():
    """Streaming: seal_batch of a 200 MiB plaintext from a chunk iterator stays well under
    the file size in extra RSS (measured about 3 MB on the dev machine, in about 1.5 s)."""
    figures = _bench("--mb", "200")
    assert figures["peak_rss_growth_mb"] < 100, figures


def test_the_memory_probe_sees_a_non_streaming_encryption():
    """Control for the test above: the same meter reports joining then encrypting 120 MiB
    as at least its size, so a pass above is not a meter that always says zero."""
    figures = _bench("--mb", "120", "--in-memory")
    assert figures["peak_rss_growth_mb"] > 120, figures


def test_public_key_pem_from_the_stored_raw_key_equals_the_one_from_the_private_key():
    """What the platform publishes (from municipality_keys.public_key) verifies the manifests it signs."""
    from cryptography.hazmat.primitives import serialization

    from payouts.sealing import load_public_key, public_key_pem, public_key_pem_from_raw

    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert public_key_pem_from_raw(raw) == public_key_pem(key)
    assert (
        load_public_key(public_key_pem_from_raw(raw)).public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        == raw
    )
