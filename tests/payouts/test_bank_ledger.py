"""The bank refuses a file it has already executed (payouts/bank.py's ledger; 天栄村, 2020: the same transfer
file sent two days running paid 1,162 people twice), and the manifest names the file and its 支払番号
(payouts/sealing.py: file_id, payment_references_sha256)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from app.tenancy.municipalities import load_signing_key
from app.tenancy.transaction import tenant_transaction
from payouts import bank, release, sealing, zengin
from payouts.bank import BankError, BankVerifyError, Ledger, LedgerRefusal
from tests.conftest import run_cli
from tests.payouts._batches import bank_settings, expected_file, make_batch
from tests.payouts.test_bank import PAYMENTS, PERSONAL_DATA, TOTAL_YEN, Sealed, seal, zengin_file

TRANSFER_DATE = dt.date(2026, 4, 1)


def _seal(tmp_path: Path, payments=PAYMENTS, *, name: str, first: Sealed | None = None, **overrides) -> Sealed:
    """A sealed file as release makes it (with the reference digest), signed by `first`'s municipality key
    and encrypted to the same bank if given."""
    mmdd = overrides.pop("mmdd", "0401")
    plaintext = zengin_file(payments, mmdd=mmdd)
    fields = dict(
        name=name,
        record_count=len(payments),
        total_yen=sum(p[6] for p in payments),
        reference_digest=True,
    )
    if first is not None:
        fields["signing_key"] = first.signing_key
    return seal(tmp_path, plaintext, **(fields | overrides))


def _verify_argv(s: Sealed, *extra: str) -> list[str]:
    return ["verify", str(s.age), str(s.manifest), "--public-key", str(s.public_key), *extra]


def _accept(s: Sealed, ledger: Path) -> bank.AcceptedFile:
    return bank.accept(s.age, s.manifest, s.public_key, s.bank_identity, ledger)[1]


def _refusal(s: Sealed, ledger: Path) -> LedgerRefusal:
    with pytest.raises(LedgerRefusal) as caught:
        _accept(s, ledger)
    for secret in PERSONAL_DATA:
        assert secret not in str(caught.value)  # 支払番号 are named; names and accounts never
    return caught.value


def _manifest(s: Sealed) -> sealing.Manifest:
    return sealing.verify_manifest(s.manifest.read_bytes(), s.signing_key.public_key())


# --- the same file twice ------------------------------------------------------------------------


def test_the_same_file_twice_is_refused_by_kyufu_bank_verify(tmp_path, capsys):
    """The 天栄村 case exactly: the same file handed over a second time is not accepted again."""
    s = _seal(tmp_path, name="furikomi.txt")
    argv = _verify_argv(s, "--identity", str(s.bank_identity))
    assert bank.main(argv) == 0
    first = capsys.readouterr()
    ledger = s.bank_identity.parent / bank.LEDGER_FILE_NAME  # the default: beside the bank's identity
    assert f"受付台帳に記録しました（{ledger}）" in first.out and _manifest(s).file_id in first.out

    assert bank.main(argv) == 2
    second = capsys.readouterr()
    assert second.out == ""  # no OK line for a refused file
    assert "already_accepted" in second.err and "受付済み" in second.err and _manifest(s).file_id in second.err
    for secret in PERSONAL_DATA:
        assert secret not in first.out + second.out + second.err
    with Ledger(ledger) as book:
        assert len(book.accepted_files()) == 1
        assert book.accepted_references("131016") == [1001, 1002, 1003, 1004]


def test_the_same_plaintext_resealed_under_a_new_file_id_is_refused(tmp_path):
    """Encrypting the same file again gives new ciphertext and a new file id, but the same plaintext."""
    ledger = tmp_path / "ledger.sqlite3"
    first = _seal(tmp_path, name="furikomi.txt")
    again = _seal(tmp_path, name="furikomi-again.txt", first=first)
    assert _manifest(first).file_id != _manifest(again).file_id
    _accept(first, ledger)
    refusal = _refusal(again, ledger)
    assert refusal.reason_code == "already_accepted" and "同じ内容" in refusal.message
    assert refusal.earlier[0].file_id == _manifest(first).file_id


# --- a different file repeating executed references (the 天栄村 shape by hand) --------------------


def test_a_file_repeating_accepted_references_is_flagged_naming_them(tmp_path):
    """The same batch rendered by hand into a second file for the next day: other bytes, other file id,
    the same 支払番号. The bank refuses it and says which 支払番号 and which earlier file."""
    ledger = tmp_path / "ledger.sqlite3"
    first = _seal(tmp_path, name="furikomi-0401.txt")
    accepted = _accept(first, ledger)
    by_hand = _seal(tmp_path, name="furikomi-0402.txt", first=first, mmdd="0402", transfer_date=dt.date(2026, 4, 2))
    refusal = _refusal(by_hand, ledger)
    assert refusal.reason_code == "references_already_accepted"
    assert (refusal.overlapping, refusal.overlap_count) == ((1001, 1002, 1003, 1004), 4)
    assert "1001, 1002, 1003, 1004、計 4 件" in refusal.message
    assert accepted.file_id and accepted.file_id in refusal.message and refusal.earlier == (accepted,)
    with Ledger(ledger) as book:  # nothing of the refused file was recorded
        assert [f.file_id for f in book.accepted_files()] == [accepted.file_id]


def test_a_partly_overlapping_file_names_only_the_repeated_references(tmp_path):
    ledger = tmp_path / "ledger.sqlite3"
    first = _seal(tmp_path, name="a.txt")
    _accept(first, ledger)
    mixed = [PAYMENTS[2], PAYMENTS[3], (3001, *PAYMENTS[0][1:]), (3002, *PAYMENTS[1][1:])]
    refusal = _refusal(_seal(tmp_path, mixed, name="b.txt", first=first, batch_id="B-2026-0002"), ledger)
    assert refusal.reason_code == "references_already_accepted"
    assert (refusal.overlapping, refusal.overlap_count) == ((1003, 1004), 2)
    assert "3001" not in refusal.message and "3002" not in refusal.message


def test_a_large_overlap_names_the_first_ten_and_the_count(tmp_path):
    ledger = tmp_path / "ledger.sqlite3"
    many = [(5001 + i, "0005", "001", 1, f"{7000000 + i}", "ﾃｽﾄ ﾀﾛｳ", 1000) for i in range(25)]
    first = _seal(tmp_path, many, name="a.txt")
    _accept(first, ledger)
    refusal = _refusal(
        _seal(tmp_path, many, name="b.txt", first=first, mmdd="0402", transfer_date=dt.date(2026, 4, 2)), ledger
    )
    assert refusal.overlapping == tuple(range(5001, 5011)) and refusal.overlap_count == 25
    assert "5001, 5002, 5003, 5004, 5005, 5006, 5007, 5008, 5009, 5010 ほか、計 25 件" in refusal.message
    assert "5011" not in refusal.message


def test_another_file_of_an_accepted_batch_is_refused(tmp_path):
    """One file per batch at the bank too, even if its 支払番号 were changed by hand."""
    ledger = tmp_path / "ledger.sqlite3"
    first = _seal(tmp_path, name="a.txt")
    _accept(first, ledger)
    renumbered = [(9000 + i, *p[1:]) for i, p in enumerate(PAYMENTS)]
    refusal = _refusal(_seal(tmp_path, renumbered, name="b.txt", first=first), ledger)
    assert refusal.reason_code == "batch_already_accepted" and "B-2026-0001" in refusal.message


# --- what is accepted --------------------------------------------------------------------------------


def test_a_new_batch_is_accepted_and_references_are_per_municipality(tmp_path):
    ledger = tmp_path / "ledger.sqlite3"
    first = _seal(tmp_path, name="a.txt")
    _accept(first, ledger)
    new_batch = [(2001 + i, *p[1:]) for i, p in enumerate(PAYMENTS)]
    second = _accept(_seal(tmp_path, new_batch, name="b.txt", first=first, batch_id="B-2026-0002"), ledger)
    # Another municipality's payment numbers are its own: the same numbers are not a repeat.
    other_town = _accept(
        _seal(tmp_path, name="c.txt", municipality_code="072443", mmdd="0402", transfer_date=dt.date(2026, 4, 2)),
        ledger,
    )
    assert (second.batch_id, second.record_count, second.total_yen) == ("B-2026-0002", 4, TOTAL_YEN)
    with Ledger(ledger) as book:
        assert [f.batch_id for f in book.accepted_files()] == ["B-2026-0001", "B-2026-0002", "B-2026-0001"]
        assert book.accepted_references("131016") == [1001, 1002, 1003, 1004, 2001, 2002, 2003, 2004]
        assert book.accepted_references("072443") == [1001, 1002, 1003, 1004]
    assert other_town.municipality_code == "072443"
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600


def test_two_operators_accepting_the_same_file_at_once_accept_it_once(tmp_path):
    """BEGIN IMMEDIATE: the second waits for the first's transaction, then finds the file accepted."""
    ledger = tmp_path / "ledger.sqlite3"
    s = _seal(tmp_path, name="a.txt")
    report = bank.verify(s.age, s.manifest, s.public_key, s.bank_identity)
    Ledger(ledger).close()  # the schema exists before the race
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def operator() -> None:
        with Ledger(ledger) as book:
            start.wait()
            try:
                outcomes.append(book.accept(report))
            except LedgerRefusal as exc:
                outcomes.append(exc.reason_code)

    threads = [threading.Thread(target=operator) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 2 and outcomes.count("already_accepted") == 1
    assert sum(isinstance(o, bank.AcceptedFile) for o in outcomes) == 1


async def test_the_ledger_survives_a_restart_of_the_command(tmp_path, subprocess_env):
    """Two runs of the real `kyufu bank verify`, two processes: the second is refused from the file."""
    s = _seal(tmp_path, name="furikomi.txt")
    env = {k: v for k, v in subprocess_env.items() if k != bank.LEDGER_ENV}
    argv = ("bank", *_verify_argv(s, "--identity", str(s.bank_identity)))
    first = run_cli(env, *argv)
    assert first.returncode == 0, first.stderr
    second = run_cli(env, *argv)
    assert second.returncode == 2 and "already_accepted" in second.stderr, second.stderr
    assert (s.bank_identity.parent / bank.LEDGER_FILE_NAME).exists()


# --- what is still refused, and the ledger untouched -------------------------------------------------


def test_a_tampered_manifest_still_fails_and_leaves_the_ledger_untouched(tmp_path, capsys):
    s = _seal(tmp_path, name="furikomi.txt")
    ledger = tmp_path / "ledger.sqlite3"
    good = s.manifest.read_bytes()
    document = json.loads(good)
    document["manifest"]["total_yen"] += 1
    s.manifest.write_text(json.dumps(document))
    assert bank.main(_verify_argv(s, "--identity", str(s.bank_identity), "--ledger", str(ledger))) == 2
    assert "bad_signature" in capsys.readouterr().err
    assert not ledger.exists()  # verification comes first; the ledger is opened only for a sound file
    s.manifest.write_bytes(good)
    assert bank.main(_verify_argv(s, "--identity", str(s.bank_identity), "--ledger", str(ledger))) == 0
    with Ledger(ledger) as book:
        assert len(book.accepted_files()) == 1


def test_a_file_repeating_a_reference_within_itself_is_refused(tmp_path):
    twice = [*PAYMENTS, (1001, "0009", "123", 1, "7654399", "ｻﾄｳ ﾊﾅｺ", 10_000)]
    s = seal(tmp_path, zengin_file(twice), record_count=5, total_yen=TOTAL_YEN + 10_000)
    with pytest.raises(BankVerifyError) as caught:
        bank.verify(s.age, s.manifest, s.public_key, s.bank_identity)
    assert caught.value.reason_code == "duplicate_reference" and "1001" in caught.value.message


def test_references_other_than_the_signed_ones_are_refused(tmp_path):
    """The bank reads the 支払番号 from the records; the municipality's signed digest must describe them."""
    s = _seal(tmp_path, name="furikomi.txt")
    other = _manifest(s).model_copy(
        update={"payment_references_sha256": sealing.references_sha256([1001, 1002, 1003, 1005])}
    )
    s.manifest.write_bytes(sealing.sign_manifest(other, s.signing_key))
    with pytest.raises(BankVerifyError) as caught:
        bank.verify(s.age, s.manifest, s.public_key, s.bank_identity)
    assert caught.value.reason_code == "references_mismatch"


def test_a_manifest_made_before_file_ids_verifies_and_is_keyed_by_its_plaintext(tmp_path, capsys):
    """Version 1 manifests (no file_id, no reference digest), signed as the old code did, still verify; the
    ledger accepts the file once, by its plaintext SHA-256 and the records' 支払番号."""
    s = seal(tmp_path)  # the old code's manifest fields
    document = json.loads(s.manifest.read_bytes())
    old = {k: v for k, v in document["manifest"].items() if k not in ("version", "file_id")}
    assert "payment_references_sha256" not in old
    signed_form = json.dumps(old, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    s.manifest.write_bytes(
        json.dumps(
            {
                "key_id": document["key_id"],
                "manifest": old,
                "signature": base64.b64encode(s.signing_key.sign(signed_form)).decode(),
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        + b"\n"
    )
    assert _manifest(s).file_id is None and _manifest(s).canonical_bytes() == signed_form
    argv = _verify_argv(s, "--identity", str(s.bank_identity))
    assert bank.main(argv) == 0
    assert "旧形式" in capsys.readouterr().out
    assert bank.main(argv) == 2
    assert "already_accepted" in capsys.readouterr().err


# --- the command's choices -----------------------------------------------------------------------------


def test_default_ledger_path_is_the_environment_or_beside_the_identity(tmp_path):
    identity = tmp_path / "keys" / "bank.key"
    assert bank.default_ledger_path(identity, {}) == identity.resolve().parent / "kyufu-bank-ledger.sqlite3"
    assert bank.default_ledger_path(identity, {bank.LEDGER_ENV: "/srv/bank/ledger.db"}) == Path("/srv/bank/ledger.db")


def test_check_only_and_no_identity_never_touch_the_ledger(tmp_path, capsys):
    s = _seal(tmp_path, name="furikomi.txt")
    ledger = s.bank_identity.parent / bank.LEDGER_FILE_NAME
    for _ in range(2):  # --no-ledger: a check, repeatable, not an acceptance
        assert bank.main(_verify_argv(s, "--identity", str(s.bank_identity), "--no-ledger")) == 0
        assert "--no-ledger" in capsys.readouterr().out
    assert bank.main(_verify_argv(s)) == 0
    assert "受付台帳には記録していません" in capsys.readouterr().out
    assert not ledger.exists()
    assert bank.main(_verify_argv(s, "--ledger", str(ledger))) == 2  # the ledger needs the plaintext's 支払番号
    assert "identity_required" in capsys.readouterr().err
    assert bank.main(_verify_argv(s, "--identity", str(s.bank_identity), "--no-ledger", "--ledger", str(ledger))) == 2
    assert not ledger.exists()


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path, capsys):
    s = _seal(tmp_path, name="furikomi.txt")
    not_a_ledger = tmp_path / "notes.txt"
    not_a_ledger.write_text("x" * 200)
    assert bank.main(_verify_argv(s, "--identity", str(s.bank_identity), "--ledger", str(not_a_ledger))) == 2
    assert "ledger_unreadable" in capsys.readouterr().err
    assert not_a_ledger.read_text() == "x" * 200
    foreign = tmp_path / "other.sqlite3"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    assert bank.main(_verify_argv(s, "--identity", str(s.bank_identity), "--ledger", str(foreign))) == 2
    assert "ledger_unreadable" in capsys.readouterr().err


def test_accept_needs_the_plaintext_checked(tmp_path):
    s = _seal(tmp_path, name="furikomi.txt")
    report = bank.verify(s.age, s.manifest, s.public_key)
    with Ledger(tmp_path / "ledger.sqlite3") as book, pytest.raises(BankError) as caught:
        book.accept(report)
    assert caught.value.reason_code == "identity_required"


# --- the sealer's side ------------------------------------------------------------------------------------


def _payments(references) -> list[zengin.Payment]:
    return [
        zengin.Payment(
            reference=r,
            bank_code="0005",
            branch_code="001",
            account_type=1,
            account_number="7654321",
            holder_kana="ﾔﾏﾀﾞ ﾀﾛｳ",
            amount_yen=1000 + i,
        )
        for i, r in enumerate(references)
    ]


@pytest.mark.parametrize("separator", ["crlf", "none"])
@pytest.mark.parametrize("reference_field", ["customer_code1", "edi"])
@pytest.mark.parametrize("piece", [7, 1000, 1 << 20])
def test_the_sealed_digest_is_the_one_the_bank_computes_from_the_records(tmp_path, separator, reference_field, piece):
    """Whatever the layout and however the plaintext is cut, the sealer's streaming digest equals the bank's
    digest of the parsed records, and the bank accepts the file."""
    references = [1, 42, 999, 123_456, 9_999_999_999]
    plaintext = zengin.generate(
        bank_settings(separator=separator, reference_field=reference_field), TRANSFER_DATE, _payments(references)
    )
    s = seal(
        tmp_path,
        plaintext,
        plaintext_chunks=[plaintext[i : i + piece] for i in range(0, len(plaintext), piece)],
        record_count=len(references),
        total_yen=sum(1000 + i for i in range(len(references))),
        reference_digest=True,
    )
    manifest = _manifest(s)
    assert manifest.version == 2 and manifest.payment_references_sha256 == sealing.references_sha256(references)
    expected = hashlib.sha256(b"".join(b"%010d\n" % r for r in references)).hexdigest()
    assert manifest.payment_references_sha256 == expected  # the definition the docs give a bank
    report, accepted = bank.accept(s.age, s.manifest, s.public_key, s.bank_identity, tmp_path / "ledger.sqlite3")
    assert report.references == tuple(references) and accepted.file_id == manifest.file_id


@pytest.mark.parametrize("references", [[5, 3, 9], [5, 5, 9]])
def test_the_sealer_refuses_references_out_of_order_or_repeated_and_leaves_nothing(tmp_path, references):
    plaintext = zengin.generate(bank_settings(), TRANSFER_DATE, _payments(references))
    with pytest.raises(sealing.SealingError, match="昇順"):
        seal(tmp_path, plaintext, record_count=3, total_yen=3003, reference_digest=True)
    assert os.listdir(tmp_path / "outbox") == []


# --- release: the file id is fixed at the first write ------------------------------------------------


async def _public_key_file(owner_conn, settings, code, tmp_path) -> Path:
    async with tenant_transaction(owner_conn, code) as conn:
        key = await load_signing_key(conn, settings.master_key_bytes, code)
    path = tmp_path / f"{code}.pub.pem"
    path.write_bytes(sealing.public_key_pem(key))
    return path


@pytest.mark.parametrize("reference_field", ["customer_code1", "edi"])
async def test_release_names_the_file_and_its_references_and_a_retry_keeps_the_id(
    owner_conn, app_pool, settings, municipality, tmp_path, reference_field
):
    """A release interrupted after writing its file and retried hands the bank one file under one id; the
    bank accepts it once, and a second file of the same batch made by hand is flagged by its 支払番号."""
    code = await municipality()
    batch = await make_batch(owner_conn, settings, code, tmp_path, reference_field=reference_field)
    async with tenant_transaction(app_pool, code) as conn:
        row = await release.pipeline.load_batch(conn, code, batch.batch_id)
        sealed = await release.render_and_seal(conn, settings, code, row)
        # the process "dies" here: the batch stays 'approved', the file stays in the outbox
    manifest = await release.release_batch(app_pool, settings, code, batch.batch_id, batch.approver)
    assert manifest.file_id is not None and manifest.file_id == sealed.manifest.file_id
    assert manifest.payment_references_sha256 == sealing.references_sha256(batch.payment_ids)

    public_key = await _public_key_file(owner_conn, settings, code, tmp_path)
    ledger = tmp_path / "bank-ledger.sqlite3"
    _, accepted = bank.accept(sealed.age_path, sealed.manifest_path, public_key, batch.identity_path, ledger)
    assert accepted.file_id == manifest.file_id
    with pytest.raises(LedgerRefusal) as caught:
        bank.accept(sealed.age_path, sealed.manifest_path, public_key, batch.identity_path, ledger)
    assert caught.value.reason_code == "already_accepted"

    # 天栄村 by hand: the batch's payments written again for the next day and sealed under the municipality's key.
    async with tenant_transaction(owner_conn, code) as conn:
        signing_key = await load_signing_key(conn, settings.master_key_bytes, code)
    next_day = dt.date(2026, 12, 2)
    by_hand = expected_file(batch, reference_field=reference_field).replace(b"1201", b"1202", 1)
    assert zengin.parse(by_hand).header.transfer_mmdd == "1202"
    recipient = next(
        line.removeprefix("# public key: ")
        for line in batch.identity_path.read_text().splitlines()
        if line.startswith("# public key: ")
    )
    again = sealing.seal_batch(
        outbox_dir=tmp_path,
        name="by-hand.txt",
        plaintext_chunks=[by_hand],
        recipients=[recipient],
        signing_key=signing_key,
        municipality_code=code,
        batch_id=str(batch.batch_id),
        transfer_date=next_day,
        record_count=manifest.record_count,
        total_yen=manifest.total_yen,
        approved_by="hand",
        approved_sha256=hashlib.sha256(by_hand).hexdigest(),
        reference_digest=True,
    )
    with pytest.raises(LedgerRefusal) as caught:
        bank.accept(
            tmp_path / "by-hand.txt.age",
            tmp_path / "by-hand.txt.manifest.json",
            public_key,
            batch.identity_path,
            ledger,
        )
    assert caught.value.reason_code == "references_already_accepted"
    assert caught.value.overlapping == tuple(sorted(batch.payment_ids)) and again.file_id != manifest.file_id
    for pid in batch.payment_ids:
        assert str(pid) in caught.value.message


def _digest_of(chunks, monkeypatch, c_reader: bool) -> str:
    """ReferenceDigest over `chunks` with or without the C reader (payouts/_fastrender.c `references`)."""
    with monkeypatch.context() as patched:
        if not c_reader:
            patched.setattr(sealing, "_c_references", None)
        digest = sealing.ReferenceDigest()
        for chunk in chunks:
            digest.feed(chunk)
        return digest.finish()


def test_the_c_reader_of_references_is_built():
    """Without it the sealer falls back to the regular expressions: correct, but slower on the release path."""
    assert sealing._c_references is not None


@pytest.mark.parametrize("separator", ["crlf", "none"])
@pytest.mark.parametrize("reference_field", ["customer_code1", "edi"])
def test_the_c_reader_and_the_expressions_agree_on_every_damaged_record(monkeypatch, separator, reference_field):
    """Every byte of the fields the reader looks at (データ区分, 顧客コード1 / EDI情報, 識別表示, CR LF), set to
    each of a few values, gives the same digest or the same refusal either way; so does a swap of records."""
    references = [7, 42, 999, 123_456, 9_999_999_999]
    plaintext = zengin.generate(
        bank_settings(separator=separator, reference_field=reference_field), TRANSFER_DATE, _payments(references)
    )
    width = 122 if separator == "crlf" else 120
    good = _digest_of([plaintext], monkeypatch, c_reader=True)
    assert good == _digest_of([plaintext], monkeypatch, c_reader=False) == sealing.references_sha256(references)
    data_record = width  # the second record: the first data record
    variants = []
    for offset in [0, *range(91, 113), *((120, 121) if width == 122 else ())]:
        for value in b"0 9Y2\r\nA":
            for record in (data_record, data_record + 2 * width):
                damaged = bytearray(plaintext)
                damaged[record + offset] = value
                variants.append(bytes(damaged))
    swapped = bytearray(plaintext)
    first, second = slice(width, 2 * width), slice(2 * width, 3 * width)
    swapped[first], swapped[second] = plaintext[second], plaintext[first]
    variants.append(bytes(swapped))
    outcomes = set()
    for variant in variants:
        results = []
        for c_reader in (True, False):
            try:
                results.append(_digest_of([variant[:500], variant[500:]], monkeypatch, c_reader))
            except sealing.SealingError as exc:
                results.append(f"refused: {exc}")
        assert results[0] == results[1]
        outcomes.add(results[0].startswith("refused"))
    assert outcomes == {True, False}  # the damage was seen by both readers, and some changes were harmless
