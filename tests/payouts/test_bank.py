"""payouts/bank.py (what a bank runs on a sealed file) and the bank simulator (devtools/banksim.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devtools import banksim
from payouts import bank, sealing
from payouts.bank import BankError, BankVerifyError
from payouts.returns_csv import RETURN_REASONS

# --- a tiny hand-built 総合振込 file (zengin.md §1.3-1.5), independent of payouts.zengin's writer ---

# (reference, bank, branch, account type, account number, holder, amount): the names and
# account numbers are distinctive so a test can prove they never appear in any output.
PAYMENTS = [
    (1001, "0005", "001", 1, "7654321", "ﾔﾏﾀﾞ ﾀﾛｳ", 100_000),
    (1002, "0005", "001", 1, "7654322", "ｽｽﾞｷ ﾊﾅｺ", 50_000),
    (1003, "0009", "123", 2, "7654323", "ｻﾄｳ ｼﾞﾛｳ", 70_000),
    (1004, "0005", "002", 1, "7654324", "ﾀｶﾊｼ ﾖ-ｺ", 30_000),
]
COUNT = len(PAYMENTS)
TOTAL_YEN = sum(p[6] for p in PAYMENTS)  # 250,000
TRANSFER_DATE = dt.date(2026, 4, 1)
PERSONAL_DATA = [p[5] for p in PAYMENTS] + [p[4] for p in PAYMENTS]


def _n(value: int | str, width: int) -> str:
    return str(value).rjust(width, "0")


def _c(value: str, width: int) -> str:
    return value.ljust(width, " ")


def zengin_file(payments=PAYMENTS, *, trailer_count=None, trailer_total=None, mmdd="0401") -> bytes:
    header = (
        "1"
        + "21"
        + "0"
        + _n(1234567890, 10)
        + _c("ｷﾕｳﾌｼ", 40)
        + mmdd
        + "0001"
        + _c("", 15)
        + "001"
        + _c("", 15)
        + "1"
        + _n(1111111, 7)
        + _c("", 17)
    )
    records = [header]
    for reference, bank_code, branch, account_type, account, holder, amount in payments:
        records.append(
            "2"
            + bank_code
            + _c("", 15)
            + branch
            + _c("", 15)
            + "0000"
            + str(account_type)
            + account
            + _c(holder, 30)
            + _n(amount, 10)
            + "0"
            + _n(reference, 10)
            + _n(0, 10)
            + "7"
            + " "
            + _c("", 7)
        )
    count = len(payments) if trailer_count is None else trailer_count
    total = sum(p[6] for p in payments) if trailer_total is None else trailer_total
    records.append("8" + _n(count, 6) + _n(total, 12) + _c("", 101))
    records.append("9" + _c("", 119))
    data = "".join(records).encode("cp932")
    assert len(data) == 120 * len(records)  # one byte per character, or the layout is off
    return data


PLAINTEXT = zengin_file()


# --- a sealed set, as the municipality would hand it over ---------------------------------------


@dataclass
class Sealed:
    dir: Path
    age: Path
    manifest: Path
    public_key: Path
    bank_identity: Path
    archive_identity: Path
    signing_key: Ed25519PrivateKey


def seal(tmp_path: Path, plaintext: bytes = PLAINTEXT, **overrides) -> Sealed:
    keys = tmp_path / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    bank_identity, archive_identity = keys / "bank.key", keys / "archive.key"
    if not bank_identity.exists():
        bank.write_identity_file(bank_identity)
        bank.write_identity_file(archive_identity)
    recipients = [_recipient_of(bank_identity), _recipient_of(archive_identity)]
    signing_key = overrides.pop("signing_key", None) or Ed25519PrivateKey.generate()
    public_key = keys / "municipality.pub.pem"
    public_key.write_bytes(sealing.public_key_pem(signing_key))
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    fields = (
        dict(
            outbox_dir=outbox,
            name="furikomi-20260401.txt",
            plaintext_chunks=[plaintext],
            recipients=recipients,
            signing_key=signing_key,
            municipality_code="131016",
            batch_id="B-2026-0001",
            transfer_date=TRANSFER_DATE,
            record_count=COUNT,
            total_yen=TOTAL_YEN,
            approved_by="S0042",
            approved_sha256=hashlib.sha256(plaintext).hexdigest(),
        )
        | overrides
    )
    sealing.seal_batch(**fields)
    name = fields["name"]
    return Sealed(
        outbox,
        outbox / f"{name}.age",
        outbox / f"{name}.manifest.json",
        public_key,
        bank_identity,
        archive_identity,
        signing_key,
    )


def _recipient_of(identity_path: Path) -> str:
    lines = identity_path.read_text().splitlines()
    return next(line for line in lines if line.startswith("# public key: ")).removeprefix("# public key: ")


def verify_reason(s: Sealed, identity: Path | None = None, *, public_key: Path | None = None) -> str:
    with pytest.raises(BankVerifyError) as caught:
        bank.verify(s.age, s.manifest, public_key or s.public_key, identity)
    message = str(caught.value)
    for secret in PERSONAL_DATA:
        assert secret not in message  # personal data never in an exception message
    return caught.value.reason_code


# --- identities -------------------------------------------------------------------------------


def test_identity_file_is_age_keygen_format_mode_0600_and_works_with_age_cli(tmp_path):
    """A bank can use our identity file with the reference `age -d -i` as it is."""
    path = tmp_path / "bank.key"
    recipient = bank.write_identity_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# created: ") and lines[1] == f"# public key: {recipient}"
    assert lines[2].startswith("AGE-SECRET-KEY-1") and len(lines) == 3
    encrypted = tmp_path / "f.age"
    with open(encrypted, "wb") as out:
        sealing.encrypt_for_recipients(PLAINTEXT, [recipient], out)
    age = shutil.which("age")
    assert age, "the age CLI is required (Debian package 'age'; the Makefile installs it)"  # fail, never skip
    result = subprocess.run([age, "-d", "-i", str(path), str(encrypted)], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == PLAINTEXT


def test_identity_file_is_never_overwritten(tmp_path):
    path = tmp_path / "bank.key"
    bank.write_identity_file(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        bank.write_identity_file(path)
    assert path.read_bytes() == before


def test_a_bad_identity_line_is_reported_by_number_without_its_content(tmp_path):
    path = tmp_path / "bank.key"
    bank.write_identity_file(path)
    secret_line = path.read_text().splitlines()[2]
    path.write_text(path.read_text() + "AGE-SECRET-KEY-1BROKEN\n")
    with pytest.raises(BankError) as caught:
        bank.load_identities(path)
    assert caught.value.reason_code == "bad_identity_file"
    assert "4 行目" in str(caught.value)
    assert "BROKEN" not in str(caught.value) and secret_line not in str(caught.value)


# --- verify -----------------------------------------------------------------------------------


def test_verify_passes_a_good_set_with_and_without_identity(tmp_path):
    s = seal(tmp_path)
    report = bank.verify(s.age, s.manifest, s.public_key)
    assert not report.plaintext_checked
    report = bank.verify(s.age, s.manifest, s.public_key, s.bank_identity)
    assert report.plaintext_checked
    assert (report.manifest.record_count, report.manifest.total_yen) == (COUNT, TOTAL_YEN)
    assert report.key_id == sealing.key_id(s.signing_key.public_key())
    # The municipality's archive copy verifies too.
    assert bank.verify(s.age, s.manifest, s.public_key, s.archive_identity).plaintext_checked


def test_one_flipped_ciphertext_byte_is_refused_as_tampered(tmp_path):
    s = seal(tmp_path)
    data = bytearray(s.age.read_bytes())
    data[len(data) // 2] ^= 0x01
    s.age.write_bytes(bytes(data))
    assert verify_reason(s) == "ciphertext_tampered"
    assert verify_reason(s, s.bank_identity) == "ciphertext_tampered"


def test_a_truncated_ciphertext_is_refused_as_truncated(tmp_path):
    s = seal(tmp_path)
    s.age.write_bytes(s.age.read_bytes()[:-17])
    assert verify_reason(s, s.bank_identity) == "ciphertext_truncated"


def test_a_file_for_another_bank_is_refused_as_wrong_identity(tmp_path):
    s = seal(tmp_path)
    other = tmp_path / "other-bank.key"
    bank.write_identity_file(other)
    assert verify_reason(s, other) == "wrong_identity"


def test_a_manifest_signed_by_another_key_is_refused(tmp_path):
    s = seal(tmp_path)
    # The published key is the municipality's; the manifest is re-signed by an impostor.
    document = json.loads(s.manifest.read_bytes())
    forged = sealing.Manifest.model_validate_json(json.dumps(document["manifest"]))
    s.manifest.write_bytes(sealing.sign_manifest(forged, Ed25519PrivateKey.generate()))
    assert verify_reason(s) == "unknown_signing_key"


def test_an_edited_manifest_total_is_refused_as_bad_signature(tmp_path):
    s = seal(tmp_path)
    document = json.loads(s.manifest.read_bytes())
    document["manifest"]["total_yen"] += 1
    s.manifest.write_text(json.dumps(document))
    assert verify_reason(s, s.bank_identity) == "bad_signature"


def test_trailer_totals_that_disagree_with_the_manifest_are_refused(tmp_path):
    """The file is self-consistent but its 合計金額 is not what the municipality vouched for."""
    s = seal(tmp_path, total_yen=TOTAL_YEN + 1)
    assert bank.verify(s.age, s.manifest, s.public_key)  # without the key, nothing shows it
    assert verify_reason(s, s.bank_identity) == "total_mismatch"


def test_a_record_count_that_disagrees_with_the_manifest_is_refused(tmp_path):
    s = seal(tmp_path, record_count=COUNT + 1)
    assert verify_reason(s, s.bank_identity) == "record_count_mismatch"


def test_a_transfer_date_that_disagrees_with_the_manifest_is_refused(tmp_path):
    s = seal(tmp_path, transfer_date=dt.date(2026, 4, 2))
    assert verify_reason(s, s.bank_identity) == "transfer_date_mismatch"


def test_a_trailer_that_disagrees_with_its_own_records_is_refused(tmp_path):
    """Manifest and trailer agree (both say +1 yen) but the data records do not add up."""
    broken = zengin_file(trailer_total=TOTAL_YEN + 1)
    s = seal(tmp_path, broken, total_yen=TOTAL_YEN + 1)
    assert verify_reason(s, s.bank_identity) == "zengin_parse_error"


def test_a_manifest_whose_plaintext_is_not_the_approved_one_is_refused(tmp_path):
    """seal_batch never writes this; a hand-made (or buggy) signer might."""
    s = seal(tmp_path)
    document = json.loads(s.manifest.read_bytes())
    changed = sealing.Manifest.model_validate_json(
        json.dumps(document["manifest"] | {"approved_sha256": hashlib.sha256(b"other").hexdigest()})
    )
    s.manifest.write_bytes(sealing.sign_manifest(changed, s.signing_key))
    assert verify_reason(s) == "not_approved"


def test_the_refusal_reasons_are_distinct(tmp_path):
    """Each failure the brief names gets its own code, so an operator knows what to ask for."""
    reasons = set()
    for case, prepare in enumerate(
        [
            lambda s: s.age.write_bytes(_flip(s.age.read_bytes())),
            lambda s: s.age.write_bytes(s.age.read_bytes()[:-1]),
            lambda s: None,  # wrong identity, below
            lambda s: s.manifest.write_bytes(sealing.sign_manifest(_manifest_of(s), Ed25519PrivateKey.generate())),
            lambda s: s.manifest.write_text(_edit_total(s.manifest.read_text())),
        ]
    ):
        s = seal(tmp_path / str(case))
        prepare(s)
        identity = s.bank_identity
        if case == 2:
            identity = tmp_path / "stranger.key"
            bank.write_identity_file(identity)
        reasons.add(verify_reason(s, identity))
    totals = seal(tmp_path / "totals", total_yen=TOTAL_YEN + 1)
    reasons.add(verify_reason(totals, totals.bank_identity))
    assert reasons == {
        "ciphertext_tampered",
        "ciphertext_truncated",
        "wrong_identity",
        "unknown_signing_key",
        "bad_signature",
        "total_mismatch",
    }


def _flip(data: bytes) -> bytes:
    changed = bytearray(data)
    changed[-1] ^= 0x80
    return bytes(changed)


def _manifest_of(s: Sealed) -> sealing.Manifest:
    return sealing.verify_manifest(s.manifest.read_bytes(), s.signing_key.public_key())


def _edit_total(text: str) -> str:
    document = json.loads(text)
    document["manifest"]["total_yen"] = 1
    return json.dumps(document)


def test_a_bad_public_key_file_is_refused(tmp_path):
    s = seal(tmp_path)
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    assert verify_reason(s, public_key=bad) == "bad_public_key"


# --- decrypt ----------------------------------------------------------------------------------


def test_decrypt_writes_the_exact_plaintext_mode_0600(tmp_path):
    s = seal(tmp_path)
    out = tmp_path / "plain" / "furikomi.txt"
    out.parent.mkdir()
    assert bank.decrypt(s.age, s.bank_identity, out) == out
    assert out.read_bytes() == PLAINTEXT
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # plaintext holds names and accounts


@pytest.mark.parametrize("damage", ["truncate", "flip", "wrong_identity"])
def test_decrypt_failure_leaves_no_plaintext_at_all(damage, tmp_path):
    """age releases plaintext 64 KiB at a time; a bad file must not leave a plausible prefix."""
    big = zengin_file(PAYMENTS * 600)  # ~290 kB: several age chunks, so a prefix would exist
    s = seal(tmp_path, big, record_count=COUNT * 600, total_yen=TOTAL_YEN * 600)
    identity = s.bank_identity
    if damage == "truncate":
        s.age.write_bytes(s.age.read_bytes()[:-1000])
    elif damage == "flip":
        s.age.write_bytes(_flip(s.age.read_bytes()))
    else:
        identity = tmp_path / "stranger.key"
        bank.write_identity_file(identity)
    out_dir = tmp_path / "plain"
    out_dir.mkdir()
    with pytest.raises(BankVerifyError) as caught:
        bank.decrypt(s.age, identity, out_dir / "furikomi.txt")
    assert caught.value.reason_code == ("wrong_identity" if damage == "wrong_identity" else "decrypt_failed")
    assert os.listdir(out_dir) == []


# --- inspect ----------------------------------------------------------------------------------


def test_inspect_totals_by_bank_and_branch(tmp_path):
    path = tmp_path / "furikomi.txt"
    path.write_bytes(PLAINTEXT)
    summary = bank.inspect(path)
    assert (summary.count, summary.total_yen, summary.transfer_mmdd) == (COUNT, TOTAL_YEN, "0401")
    assert summary.by_branch == (
        bank.BranchTotal("0005", "001", 2, 150_000),
        bank.BranchTotal("0005", "002", 1, 30_000),
        bank.BranchTotal("0009", "123", 1, 70_000),
    )
    rendered = summary.render()
    assert "250,000" in rendered
    for secret in PERSONAL_DATA:
        assert secret not in rendered


def test_inspect_refuses_a_file_that_is_not_zengin(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(PLAINTEXT[:-5])
    with pytest.raises(BankError) as caught:
        bank.inspect(path)
    assert caught.value.reason_code == "zengin_parse_error"


def test_inspect_on_the_sealed_file_says_to_decrypt_it_first(tmp_path):
    """Issue 18, point 12: it used to report the ciphertext's line ends as a CR+LF problem."""
    s = seal(tmp_path)
    with pytest.raises(BankError) as caught:
        bank.inspect(s.age)
    assert caught.value.reason_code == "encrypted_file" and "kyufu bank decrypt" in caught.value.message


def test_kyufu_bank_help_answers_through_the_kyufu_command(capsys):
    """`kyufu bank --help` was refused by kyufu's own parser before the bank's tool saw it."""
    from app.cli import main as kyufu

    assert kyufu(["bank", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: kyufu bank" in out and "verify" in out and "inspect" in out


# --- main -------------------------------------------------------------------------------------


def test_main_verify_exit_codes_and_output(tmp_path, capsys):
    s = seal(tmp_path)
    argv = [
        "verify",
        str(s.age),
        str(s.manifest),
        "--public-key",
        str(s.public_key),
        "--identity",
        str(s.bank_identity),
    ]
    assert bank.main(argv) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "250,000" in out
    s.age.write_bytes(_flip(s.age.read_bytes()))
    assert bank.main(argv) == 2
    captured = capsys.readouterr()
    assert "ciphertext_tampered" in captured.err and captured.out == ""


def test_main_decrypt_and_inspect_never_print_personal_data(tmp_path, capsys):
    s = seal(tmp_path)
    out = tmp_path / "furikomi.txt"
    assert bank.main(["decrypt", str(s.age), "--identity", str(s.bank_identity), "--out", str(out)]) == 0
    assert bank.main(["inspect", str(out)]) == 0
    printed = capsys.readouterr()
    assert "0005 001" in printed.out
    for secret in PERSONAL_DATA:
        assert secret not in printed.out + printed.err


def test_main_failures_exit_2(tmp_path, capsys):
    s = seal(tmp_path)
    assert (
        bank.main(["decrypt", str(s.age), "--identity", str(tmp_path / "missing.key"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert bank.main(["inspect", str(s.age)]) == 2  # ciphertext is not a Zengin file: decrypt it first
    assert bank.main(["verify", str(s.age)]) == 2  # usage error
    assert bank.main(["nonsense"]) == 2
    err = capsys.readouterr().err
    assert "encrypted_file" in err


def test_main_keygen_prints_the_recipient(tmp_path, capsys):
    path = tmp_path / "bank.key"
    assert bank.main(["keygen", "--out", str(path)]) == 0
    assert _recipient_of(path) in capsys.readouterr().out
    assert bank.main(["keygen", "--out", str(path)]) == 2  # never overwrite a key


# --- the bank simulator ------------------------------------------------------------------------


def test_banksim_is_deterministic_for_a_seed():
    many = zengin_file([(2000 + i, "0005", "001", 1, _n(i, 7), "ﾃｽﾄ", 1000 + i) for i in range(1, 201)])
    first = banksim.execute(many, return_share=0.1, seed=7)
    assert first == banksim.execute(many, return_share=0.1, seed=7)
    assert first != banksim.execute(many, return_share=0.1, seed=8)
    assert len(first) == 20
    assert {r.reason_code for r in first} <= set(RETURN_REASONS)
    assert all(r.reason == RETURN_REASONS[r.reason_code] for r in first)
    assert {r.payment_reference for r in first} <= {2000 + i for i in range(1, 201)}
    assert len({r.payment_reference for r in first}) == 20


def test_banksim_share_bounds():
    assert banksim.execute(PLAINTEXT, return_share=0.0, seed=1) == []
    assert [r.payment_reference for r in banksim.execute(PLAINTEXT, return_share=1.0, seed=1)] == [
        1001,
        1002,
        1003,
        1004,
    ]
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            banksim.execute(PLAINTEXT, return_share=bad, seed=1)


def test_banksim_refuses_duplicate_references():
    doubled = zengin_file(PAYMENTS + PAYMENTS[:1])
    with pytest.raises(ValueError, match="顧客コード"):
        banksim.execute(doubled, return_share=0.5, seed=1)
