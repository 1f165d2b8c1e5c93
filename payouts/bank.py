"""What a bank's operations team runs on a sealed file from a municipality.

`verify` checks everything the bank can check before loading the file: the manifest's
signature, the ciphertext against the manifest, and (with the bank's age identity) the
plaintext's hash, its strict Zengin parse, its control totals and its 支払番号 against the manifest.
With the identity it then accepts the file into the bank's ledger (a SQLite file, `Ledger`): a file
accepted before is refused, and so is a different file that repeats 支払番号 already accepted (the
天栄村 case of 2020: the same transfers sent again the next day), naming them.
`decrypt` writes the plaintext for the bank's loader, never leaving a partial file;
`inspect` summarises a plaintext by bank and branch without showing names or accounts.

The lead mounts `main(argv)` as `kyufu bank ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import os
import sqlite3
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pyrage
from pyrage import x25519

from payouts import sealing, zengin

_READ_BLOCK = 1024 * 1024
_IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
# pyrage 1.4.0's text for "none of the given identities opens this file" (age's NoMatchingKeys).
_NO_MATCHING_KEYS = "No matching keys found"
_SAMPLE = 10  # 支払番号 named in a message; the count says how many in all


class BankError(Exception):
    """A bank-side step failed. `reason_code` is stable (for scripts and tests); the message is
    for the operator and never contains names or account numbers."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(f"[{reason_code}] {message}")
        self.reason_code = reason_code
        self.message = message


class BankVerifyError(BankError):
    """The sealed file must not be loaded: see reason_code (REASONS lists them)."""


REASONS = {
    "manifest_malformed": "マニフェストが読めない・形式が違う",
    "unknown_signing_key": "マニフェストが登録済みでない鍵で署名されている",
    "bad_signature": "マニフェストの署名が正しくない（書き換え）",
    "bad_public_key": "公開鍵ファイルが読めない",
    "not_approved": "承認された平文と封緘された平文のハッシュが違う",
    "ciphertext_truncated": "暗号文が途中で切れている",
    "ciphertext_size_mismatch": "暗号文の大きさがマニフェストと違う",
    "ciphertext_tampered": "暗号文の内容がマニフェストのハッシュと違う",
    "bad_identity_file": "age 秘密鍵ファイルが読めない",
    "wrong_identity": "この秘密鍵では復号できない（宛先が違う）",
    "decrypt_failed": "復号に失敗した（暗号文の破損）",
    "plaintext_hash_mismatch": "復号した平文のハッシュがマニフェストと違う",
    "zengin_parse_error": "全銀ファイルとして不正",
    "record_count_mismatch": "件数がマニフェストと違う",
    "total_mismatch": "合計金額がマニフェストと違う",
    "transfer_date_mismatch": "取組日がマニフェストと違う",
    "duplicate_reference": "同じ支払番号の明細が 1 つのファイルに複数ある",
    "references_mismatch": "明細の支払番号がマニフェストの支払番号（SHA-256）と違う",
    "already_accepted": "同じファイル（ファイルID または平文 SHA-256 が同じ）を受付済み",
    "references_already_accepted": "受付済みのファイルの支払番号を含む（二重振込のおそれ）",
    "batch_already_accepted": "同じ自治体・バッチのファイルを別のファイルで受付済み",
    "identity_required": "台帳への受付には平文の確認（秘密鍵）が必要",
    "ledger_unreadable": "受付台帳が読めない（台帳ではないファイル・新しい形式）",
    "ledger_busy": "受付台帳が他の処理で使用中",
}


# --- identities -----------------------------------------------------------------------------


def write_identity_file(path: Path) -> str:
    """Create an X25519 age identity at `path` in age-keygen's format, mode 0600, and return
    its recipient (`age1...`) for the municipality. Refuses to overwrite: losing a bank key
    would make every file sealed to it unreadable."""
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask could only narrow it, but be explicit
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return recipient


def load_identities(path: Path) -> list[x25519.Identity]:
    """Read an age identity file (age-keygen format: comments, blank lines, and one or more
    AGE-SECRET-KEY-1... lines). Errors name the line number, never its content."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise BankError("bad_identity_file", "age 秘密鍵ファイルに ASCII 以外の文字があります") from None
    identities = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(_IDENTITY_PREFIX):
            raise BankError(
                "bad_identity_file", f"age 秘密鍵ファイルの {number} 行目が AGE-SECRET-KEY-1... ではありません"
            )
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise BankError("bad_identity_file", f"age 秘密鍵ファイルの {number} 行目の鍵が壊れています") from None
    if not identities:
        raise BankError("bad_identity_file", "age 秘密鍵ファイルに鍵がありません")
    return identities


# --- decryption -----------------------------------------------------------------------------


class _CollectingWriter:
    """Keeps decrypted plaintext in memory (for the strict parse) and hashes it."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.hash = hashlib.sha256()
        self.error: BaseException | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.hash.update(data)
        return len(data)

    def flush(self) -> None:
        pass


def _decrypt_stream(
    age_path: Path, identities: list[x25519.Identity], writer: _CollectingWriter | sealing.AtomicSink
) -> None:
    """pyrage.decrypt_io with its errors turned into reasons. Errors raised by our own writer
    (a full disk) are re-raised as they are."""
    with open(age_path, "rb") as reader:
        try:
            # pyrage writes to any object with write(b); its stubs ask for io.BufferedIOBase
            pyrage.decrypt_io(reader, writer, identities)  # type: ignore[arg-type]
        except Exception as exc:
            # pyrage reports our writer's failure only as text; the original says what happened.
            if writer.error is not None:
                raise writer.error from None
            if isinstance(exc, pyrage.DecryptError):
                if str(exc) == _NO_MATCHING_KEYS:
                    raise BankVerifyError(
                        "wrong_identity", "この秘密鍵では復号できません（ファイルは別の受取人宛てに暗号化されています）"
                    ) from None
                raise BankVerifyError("decrypt_failed", "暗号文のヘッダが壊れているため復号できません") from None
            if isinstance(exc, OSError):
                # age authenticates each 64 KiB chunk; a bad or missing chunk surfaces here.
                raise BankVerifyError(
                    "decrypt_failed", "暗号文が壊れているか途中で切れているため復号できません"
                ) from None
            raise
    # pyrage drops (and so flushes) its buffer without reporting a failure there.
    if writer.error is not None:
        raise writer.error


def decrypt(age_path: Path, identity_path: Path, out_path: Path) -> Path:
    """Decrypt `age_path` into `out_path` (mode 0600), streaming. Either the whole plaintext
    appears under out_path or nothing does: age releases plaintext chunk by chunk, so a file
    cut short would otherwise leave a plausible-looking prefix behind."""
    identities = load_identities(identity_path)
    out_path = Path(out_path)
    with sealing.atomic_file(out_path.parent, out_path.name) as sink:
        _decrypt_stream(Path(age_path), identities, sink)
    return out_path


# --- verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyReport:
    """What verify() established. plaintext_checked is False when no identity was given."""

    manifest: sealing.Manifest
    key_id: str
    ciphertext_sha256: str
    ciphertext_size: int
    plaintext_checked: bool
    references: tuple[int, ...] = ()  # the 支払番号 of the data records, ascending; empty if not decrypted


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(_READ_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def verify(
    age_path: Path, manifest_path: Path, public_key_path: Path, identity_path: Path | None = None
) -> VerifyReport:
    """Check a sealed file before loading it; raise BankVerifyError on the first problem."""
    try:
        public_key = sealing.load_public_key(Path(public_key_path).read_bytes())
        with open(manifest_path, "rb") as handle:
            # Bounded read: a huge file handed over as "the manifest" must not fill memory.
            signed = handle.read(sealing.MAX_MANIFEST_BYTES + 1)
        manifest = sealing.verify_manifest(signed, public_key)
    except sealing.ManifestError as exc:
        raise BankVerifyError(exc.reason, str(exc)) from None
    if manifest.plaintext_sha256 != manifest.approved_sha256:
        raise BankVerifyError("not_approved", "マニフェスト上、封緘された平文は承認された平文と異なります")

    ciphertext_sha256, ciphertext_size = _hash_file(Path(age_path))
    if ciphertext_size < manifest.ciphertext_size:
        raise BankVerifyError(
            "ciphertext_truncated",
            f"暗号文が途中で切れています（{ciphertext_size} バイト、"
            f"マニフェストでは {manifest.ciphertext_size} バイト）",
        )
    if ciphertext_size != manifest.ciphertext_size:
        raise BankVerifyError(
            "ciphertext_size_mismatch",
            f"暗号文の大きさが違います（{ciphertext_size} バイト、マニフェストでは {manifest.ciphertext_size} バイト）",
        )
    if ciphertext_sha256 != manifest.ciphertext_sha256:
        raise BankVerifyError("ciphertext_tampered", "暗号文の SHA-256 がマニフェストと違います（改ざんまたは破損）")

    report = VerifyReport(
        manifest=manifest,
        key_id=sealing.key_id(public_key),
        ciphertext_sha256=ciphertext_sha256,
        ciphertext_size=ciphertext_size,
        plaintext_checked=identity_path is not None,
    )
    if identity_path is None:
        return report

    writer = _CollectingWriter()
    _decrypt_stream(Path(age_path), load_identities(identity_path), writer)
    if writer.hash.hexdigest() != manifest.plaintext_sha256:
        raise BankVerifyError("plaintext_hash_mismatch", "復号した平文の SHA-256 がマニフェストと違います")
    plaintext = b"".join(writer.chunks)
    writer.chunks.clear()
    parsed = _parse(plaintext, BankVerifyError)
    count, total_yen = len(parsed.payments), sum(p.amount_yen for p in parsed.payments)
    if count != manifest.record_count or parsed.count != manifest.record_count:
        raise BankVerifyError(
            "record_count_mismatch",
            f"件数が違います（ファイル {parsed.count} 件・明細 {count} 件、マニフェスト {manifest.record_count} 件）",
        )
    if total_yen != manifest.total_yen or parsed.total_yen != manifest.total_yen:
        raise BankVerifyError(
            "total_mismatch",
            f"合計金額が違います（ファイル {parsed.total_yen:,} 円・明細合計 {total_yen:,} 円、"
            f"マニフェスト {manifest.total_yen:,} 円）",
        )
    expected_mmdd = manifest.transfer_date.strftime("%m%d")
    if parsed.header.transfer_mmdd != expected_mmdd:
        raise BankVerifyError(
            "transfer_date_mismatch",
            f"取組日が違います（ファイル {parsed.header.transfer_mmdd}、マニフェスト {expected_mmdd}）",
        )
    references = sorted(payment.reference for payment in parsed.payments)
    repeated = sorted({a for a, b in zip(references, references[1:]) if a == b})
    if repeated:
        raise BankVerifyError(
            "duplicate_reference",
            f"同じ支払番号の明細が複数あります（支払番号 {_some(repeated)}）。二重振込になるため受け付けません",
        )
    # The references the ledger keys on are read from the records; the signed digest says they are the ones
    # the municipality released (sealing.py explains why the manifest carries a digest, not the list).
    signed_digest = manifest.payment_references_sha256
    if signed_digest is not None and signed_digest != sealing.references_sha256(references):
        raise BankVerifyError(
            "references_mismatch", "明細の支払番号がマニフェストの支払番号（payment_references_sha256）と一致しません"
        )
    return replace(report, references=tuple(references))


def _some(references: list[int] | tuple[int, ...], total: int | None = None) -> str:
    """The first few 支払番号 and how many in all (payment numbers, not personal data)."""
    total = len(references) if total is None else total
    shown = ", ".join(str(r) for r in references[:_SAMPLE])
    return f"{shown}{' ほか' if total > _SAMPLE else ''}、計 {total:,} 件"


def _parse(plaintext: bytes, error_class: type[BankError]):
    try:
        return zengin.parse(plaintext)
    except zengin.ZenginParseError as exc:
        # zengin's messages give positions and field names, not field contents.
        raise error_class("zengin_parse_error", f"全銀ファイルとして不正です: {exc}") from None


# --- the ledger -----------------------------------------------------------------------------

LEDGER_ENV = "KYUFU_BANK_LEDGER"
LEDGER_FILE_NAME = "kyufu-bank-ledger.sqlite3"
LEDGER_VERSION = 1  # PRAGMA user_version of LEDGER_SCHEMA
_JST = dt.timezone(dt.timedelta(hours=9))

# The ledger's tables. The UNIQUE keys are the rules themselves (one file id, one plaintext, one file per
# municipality's batch, a 支払番号 of a municipality accepted once); Ledger.accept checks them first only to
# say which one a file breaks and to name the 支払番号.
LEDGER_SCHEMA = (
    """
    CREATE TABLE accepted_files (
        ledger_id INTEGER PRIMARY KEY,
        file_id TEXT UNIQUE,  -- NULL for a manifest made before file ids (sealing.Manifest version None)
        municipality_code TEXT NOT NULL,
        batch_id TEXT NOT NULL,
        file_name TEXT NOT NULL,
        transfer_date TEXT NOT NULL,
        plaintext_sha256 TEXT NOT NULL UNIQUE,
        ciphertext_sha256 TEXT NOT NULL,
        record_count INTEGER NOT NULL CHECK (record_count > 0),
        total_yen INTEGER NOT NULL CHECK (total_yen > 0),
        signing_key_id TEXT NOT NULL,
        accepted_at TEXT NOT NULL,  -- UTC, ISO 8601
        UNIQUE (municipality_code, batch_id)
    )
    """,
    """
    CREATE TABLE accepted_references (
        municipality_code TEXT NOT NULL,
        reference INTEGER NOT NULL CHECK (reference > 0),
        ledger_id INTEGER NOT NULL REFERENCES accepted_files (ledger_id),
        PRIMARY KEY (municipality_code, reference)
    ) WITHOUT ROWID
    """,
)
# The incoming file's 支払番号, per connection (SQLite's temp schema), to join with the accepted ones.
INCOMING_TABLE = "CREATE TEMP TABLE IF NOT EXISTS incoming_references (reference INTEGER PRIMARY KEY)"
_FILE_COLUMNS = (
    "ledger_id, file_id, municipality_code, batch_id, plaintext_sha256, record_count, total_yen, accepted_at"
)
# An accepted file with this file id / this plaintext / this municipality's batch.
FILE_BY_ID = f"SELECT {_FILE_COLUMNS} FROM accepted_files WHERE file_id = ?"
FILE_BY_PLAINTEXT = f"SELECT {_FILE_COLUMNS} FROM accepted_files WHERE plaintext_sha256 = ?"
FILE_BY_BATCH = f"SELECT {_FILE_COLUMNS} FROM accepted_files WHERE municipality_code = ? AND batch_id = ?"
FILE_BY_LEDGER_ID = f"SELECT {_FILE_COLUMNS} FROM accepted_files WHERE ledger_id = ?"
# How many of the incoming 支払番号 each earlier file of the municipality already carried.
OVERLAP_BY_FILE = """
SELECT a.ledger_id, count(*) FROM accepted_references a JOIN incoming_references i ON i.reference = a.reference
WHERE a.municipality_code = ? GROUP BY a.ledger_id ORDER BY a.ledger_id
"""
# The lowest of them, to name in the refusal.
OVERLAP_SAMPLE = f"""
SELECT a.reference FROM accepted_references a JOIN incoming_references i ON i.reference = a.reference
WHERE a.municipality_code = ? ORDER BY a.reference LIMIT {_SAMPLE}
"""
RECORD_FILE = """
INSERT INTO accepted_files (file_id, municipality_code, batch_id, file_name, transfer_date, plaintext_sha256,
    ciphertext_sha256, record_count, total_yen, signing_key_id, accepted_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
RECORD_REFERENCES = (
    "INSERT INTO accepted_references (municipality_code, reference, ledger_id)"
    " SELECT ?, reference, ? FROM incoming_references"
)


def default_ledger_path(identity_path: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Where `kyufu bank verify` keeps its ledger without --ledger: $KYUFU_BANK_LEDGER, else a file beside
    the bank's age identity (the bank's own, protected directory; never the current directory)."""
    configured = (os.environ if environ is None else environ).get(LEDGER_ENV, "").strip()
    if configured:
        return Path(configured)
    return Path(identity_path).resolve().parent / LEDGER_FILE_NAME


@dataclass(frozen=True)
class AcceptedFile:
    """A file in the ledger (what a refusal names, or what accept recorded)."""

    ledger_id: int
    file_id: str | None
    municipality_code: str
    batch_id: str
    plaintext_sha256: str
    record_count: int
    total_yen: int
    accepted_at: str

    def describe(self) -> str:
        when = dt.datetime.fromisoformat(self.accepted_at).astimezone(_JST).strftime("%Y-%m-%d %H:%M")
        file_id = self.file_id or "なし（旧形式のマニフェスト）"
        return (
            f"ファイルID {file_id}、団体コード {self.municipality_code}、バッチ {self.batch_id}、"
            f"{self.record_count:,} 件 {self.total_yen:,} 円、{when}（日本時間）受付"
        )


class LedgerRefusal(BankVerifyError):
    """The file is sound but the ledger says it would pay again: already_accepted (the same file id or the
    same plaintext), references_already_accepted (`overlapping`: the lowest repeated 支払番号,
    `overlap_count`: how many), batch_already_accepted. `earlier` are the accepted files concerned."""

    def __init__(
        self,
        reason_code: str,
        message: str,
        earlier: tuple[AcceptedFile, ...],
        overlapping: tuple[int, ...] = (),
        overlap_count: int = 0,
    ) -> None:
        super().__init__(reason_code, message)
        self.earlier = earlier
        self.overlapping = overlapping
        self.overlap_count = overlap_count


class Ledger:
    """The bank's record of the files it accepted for execution and of every 支払番号 in them (keyed by
    municipality and 支払番号), in a SQLite file of its own: it survives restarts and needs no server.

    Use as a context manager; `accept` records one verified file in one transaction or refuses it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            # The ledger holds no personal data, but it is the bank's record: private to its owner.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA synchronous = FULL")  # an accepted file must not be forgotten by a power cut
            with self._write():
                self._prepare()
            self._db.execute(INCOMING_TABLE)
        except sqlite3.OperationalError:  # I/O, a full disk, permissions: main reports SQLite's text
            self._db.close()
            raise
        except sqlite3.DatabaseError:  # "file is not a database"
            self._db.close()
            raise self._unreadable() from None
        except BaseException:
            self._db.close()
            raise

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction. BEGIN IMMEDIATE takes the ledger's write lock before anything is read: two
        operators verifying the same file at the same moment would otherwise both find it absent and both
        accept it (the 天栄村 double run, one second apart instead of one day)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):  # still held after the timeout
                raise BankError(
                    "ledger_busy", "受付台帳が他の処理で使用中です。しばらくしてからもう一度実行してください"
                ) from None
            raise
        try:
            yield
        except BaseException:
            if self._db.in_transaction:  # SQLite has rolled back by itself after some errors (a full disk)
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _unreadable(self, detail: str = "SQLite のファイルではありません") -> BankError:
        return BankError("ledger_unreadable", f"受付台帳として読めません（{detail}）: {self.path}")

    def _prepare(self) -> None:
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError:
            raise self._unreadable() from None
        if version == 0 and tables == 0:
            for statement in LEDGER_SCHEMA:
                self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {LEDGER_VERSION}")
        elif version != LEDGER_VERSION:
            raise self._unreadable(f"台帳の形式 {version} はこの版の kyufu bank が扱えません（{LEDGER_VERSION} のみ）")

    def _file(self, query: str, *args: object) -> AcceptedFile | None:
        row = self._db.execute(query, args).fetchone()
        return AcceptedFile(*row) if row else None

    def accepted_files(self) -> list[AcceptedFile]:
        """Every accepted file, oldest first."""
        query = f"SELECT {_FILE_COLUMNS} FROM accepted_files ORDER BY ledger_id"
        return [AcceptedFile(*row) for row in self._db.execute(query)]

    def accepted_references(self, municipality_code: str) -> list[int]:
        """The municipality's accepted 支払番号, ascending."""
        query = "SELECT reference FROM accepted_references WHERE municipality_code = ? ORDER BY reference"
        return [row[0] for row in self._db.execute(query, (municipality_code,))]

    def accept(self, report: VerifyReport, *, now: dt.datetime | None = None) -> AcceptedFile:
        """Record a verified file, its 支払番号 included, or raise LedgerRefusal saying which earlier file it
        repeats. Needs the plaintext checked: the 支払番号 come from the decrypted records."""
        if not report.plaintext_checked:
            raise BankError(
                "identity_required",
                "受付台帳に記録するには平文の確認が必要です（--identity で秘密鍵を指定してください）",
            )
        m = report.manifest
        accepted_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat(timespec="seconds")
        with self._write():
            self._refuse_repeats(m, report.references)
            cursor = self._db.execute(
                RECORD_FILE,
                (
                    m.file_id,
                    m.municipality_code,
                    m.batch_id,
                    m.file_name,
                    m.transfer_date.isoformat(),
                    m.plaintext_sha256,
                    report.ciphertext_sha256,
                    m.record_count,
                    m.total_yen,
                    report.key_id,
                    accepted_at,
                ),
            )
            ledger_id = cursor.lastrowid
            self._db.execute(RECORD_REFERENCES, (m.municipality_code, ledger_id))
            self._db.execute("DELETE FROM incoming_references")
            entry = self._file(FILE_BY_LEDGER_ID, ledger_id)
        assert entry is not None
        return entry

    def _refuse_repeats(self, m: sealing.Manifest, references: tuple[int, ...]) -> None:
        earlier = m.file_id is not None and self._file(FILE_BY_ID, m.file_id)
        if earlier:
            raise LedgerRefusal(
                "already_accepted",
                f"このファイルは受付済みです（{earlier.describe()}）。同じファイルを二度実行すると二重振込になるため"
                "受け付けません",
                (earlier,),
            )
        earlier = self._file(FILE_BY_PLAINTEXT, m.plaintext_sha256)
        if earlier:
            raise LedgerRefusal(
                "already_accepted",
                f"同じ内容のファイルを受付済みです（平文の SHA-256 が同じ。{earlier.describe()}）。"
                "封緘し直した同じファイルを実行すると二重振込になるため受け付けません",
                (earlier,),
            )
        self._db.execute("DELETE FROM incoming_references")
        self._db.executemany("INSERT INTO incoming_references (reference) VALUES (?)", ((r,) for r in references))
        by_file = self._db.execute(OVERLAP_BY_FILE, (m.municipality_code,)).fetchall()
        if by_file:
            count = sum(n for _, n in by_file)
            sample = tuple(row[0] for row in self._db.execute(OVERLAP_SAMPLE, (m.municipality_code,)))
            files = tuple(f for f in (self._file(FILE_BY_LEDGER_ID, ledger_id) for ledger_id, _ in by_file) if f)
            raise LedgerRefusal(
                "references_already_accepted",
                f"受付済みのファイルと同じ支払番号の明細が {count:,} 件あります（支払番号 {_some(sample, count)}）。"
                f"二重振込のおそれがあるため受け付けません。受付済みのファイル: "
                + " / ".join(f.describe() for f in files[:3])
                + (f" ほか {len(files) - 3} ファイル" if len(files) > 3 else "")
                + "。自治体に確認してください",
                files,
                sample,
                count,
            )
        earlier = self._file(FILE_BY_BATCH, m.municipality_code, m.batch_id)
        if earlier:
            raise LedgerRefusal(
                "batch_already_accepted",
                f"このバッチは別のファイルで受付済みです（{earlier.describe()}）。1 つのバッチは 1 回だけ送信されるため"
                "受け付けません。自治体に確認してください",
                (earlier,),
            )


def accept(
    age_path: Path, manifest_path: Path, public_key_path: Path, identity_path: Path, ledger_path: Path
) -> tuple[VerifyReport, AcceptedFile]:
    """verify (everything, with the identity), then record the file in the ledger or refuse it."""
    report = verify(age_path, manifest_path, public_key_path, identity_path)
    with Ledger(ledger_path) as ledger:
        return report, ledger.accept(report)


# --- inspection -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BranchTotal:
    bank_code: str
    branch_code: str
    count: int
    total_yen: int


@dataclass(frozen=True)
class InspectSummary:
    """Totals of a plaintext file, with no personal data in it."""

    transfer_mmdd: str
    count: int
    total_yen: int
    by_branch: tuple[BranchTotal, ...]

    def render(self) -> str:
        lines = [
            f"取組日 (MMDD): {self.transfer_mmdd}",
            f"件数: {self.count:,} 件",
            f"合計金額: {self.total_yen:,} 円",
            "銀行 支店   件数        金額(円)",
        ]
        lines += [f"{b.bank_code} {b.branch_code} {b.count:>7,} {b.total_yen:>15,}" for b in self.by_branch]
        return "\n".join(lines)


def inspect(plaintext_path: Path) -> InspectSummary:
    """Count and total a plaintext Zengin file, overall and per receiving bank/branch."""
    data = Path(plaintext_path).read_bytes()
    if data.startswith(AGE_HEADER):
        # The sealed file itself, not its plaintext: say what to do instead of failing on its line ends.
        raise BankError(
            "encrypted_file",
            "これは暗号化された（.age の）ファイルです。先に "
            "kyufu bank decrypt --identity 秘密鍵ファイル --out 平文ファイル で復号し、その平文ファイルを指定して"
            "ください（受付の確認は kyufu bank verify で行います）。",
        )
    parsed = _parse(data, BankError)
    groups: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for payment in parsed.payments:
        group = groups[(payment.bank_code, payment.branch_code)]
        group[0] += 1
        group[1] += payment.amount_yen
    return InspectSummary(
        transfer_mmdd=parsed.header.transfer_mmdd,
        count=parsed.count,
        total_yen=parsed.total_yen,
        by_branch=tuple(BranchTotal(bank, branch, n, yen) for (bank, branch), (n, yen) in sorted(groups.items())),
    )


AGE_HEADER = b"age-encryption.org/v1\n"  # the first line of every age file (age-encryption.org/v1 spec)


# --- command line ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kyufu bank", description="自治体から届いた封緘済み全銀ファイルの検証・復号・確認"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("verify", help="署名・暗号文・（秘密鍵があれば）平文と合計を検証する")
    p.add_argument("age_file", type=Path)
    p.add_argument("manifest", type=Path)
    p.add_argument("--public-key", type=Path, required=True, help="自治体のマニフェスト署名公開鍵 (PEM)")
    p.add_argument("--identity", type=Path, help="銀行の age 秘密鍵ファイル（平文の確認と受付台帳への記録に必要）")
    ledger = p.add_mutually_exclusive_group()
    ledger.add_argument(
        "--ledger",
        type=Path,
        help=f"受付台帳 (SQLite)。省略時は環境変数 {LEDGER_ENV}、"
        f"なければ秘密鍵ファイルと同じフォルダの {LEDGER_FILE_NAME}",
    )
    ledger.add_argument(
        "--no-ledger",
        action="store_true",
        help="受付台帳を使わず検証だけする（受付にはならない。二重実行の確認も記録もしない）",
    )
    p = commands.add_parser("decrypt", help="復号して平文ファイルを書く")
    p.add_argument("age_file", type=Path)
    p.add_argument("--identity", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = commands.add_parser("inspect", help="平文の件数・合計・銀行支店別内訳を表示する（氏名・口座番号は表示しない）")
    p.add_argument("plaintext", type=Path)
    p = commands.add_parser("keygen", help="銀行の age 秘密鍵ファイルを作り、自治体に渡す公開鍵を表示する")
    p.add_argument("--out", type=Path, required=True)
    return parser


def main(argv: list[str]) -> int:
    """Entry point for `kyufu bank`: 0 on success, 2 with the reason on stderr on failure."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.command == "verify":
            _verify_command(args)
        elif args.command == "decrypt":
            out = decrypt(args.age_file, args.identity, args.out)
            print(f"OK: 復号しました: {out}")
        elif args.command == "inspect":
            print(inspect(args.plaintext).render())
        elif args.command == "keygen":
            recipient = write_identity_file(args.out)
            print(f"秘密鍵を書きました: {args.out}（権限 0600、厳重に保管してください）")
            print(f"自治体に渡す公開鍵: {recipient}")
    except BankError as exc:
        print(f"エラー [{exc.reason_code}]: {exc.message}", file=sys.stderr)
        return 2
    except sealing.SealingError as exc:
        print(f"エラー: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Paths are the operator's own input; strerror says what went wrong (not found, full disk).
        print(f"エラー: {exc.filename or ''} {exc.strerror or exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        # SQLite's text names the trouble (disk full, I/O error), never a row's content.
        print(
            f"エラー [ledger_error]: 受付台帳を更新できませんでした（{exc}）。受付は記録されていません", file=sys.stderr
        )
        return 2
    return 0


def _verify_command(args: argparse.Namespace) -> None:
    """`kyufu bank verify`: with --identity the file is accepted into the ledger (or refused); nothing is
    printed before the outcome is known, so a refused file never shows an OK line."""
    if args.identity is None and args.ledger is not None:
        raise BankError(
            "identity_required", "受付台帳に記録するには平文の確認が必要です（--identity で秘密鍵を指定してください）"
        )
    report = verify(args.age_file, args.manifest, args.public_key, args.identity)
    ledger_path: Path | None = None
    entry: AcceptedFile | None = None
    if args.identity is not None and not args.no_ledger:
        ledger_path = args.ledger or default_ledger_path(args.identity)
        with Ledger(ledger_path) as ledger:
            entry = ledger.accept(report)
    m = report.manifest
    print(f"OK: 署名（鍵 {report.key_id}）と暗号文 SHA-256 を確認しました")
    print(f"バッチ {m.batch_id}（団体コード {m.municipality_code}）取組日 {m.transfer_date.isoformat()}")
    print(f"件数 {m.record_count:,} 件 / 合計 {m.total_yen:,} 円 / 承認者 {m.approved_by}")
    if report.plaintext_checked:
        print("OK: 復号した平文のハッシュ・全銀形式・件数・合計・取組日・支払番号がマニフェストと一致しました")
    else:
        print("注意: 秘密鍵が指定されていないため、平文の内容は確認していません（--identity）")
    if m.file_id is None:
        print(
            "注意: 旧形式のマニフェストです（ファイルID・支払番号の SHA-256 なし）。"
            "台帳は平文の SHA-256 と明細の支払番号で照合します"
        )
    if entry is not None:
        file_id = entry.file_id or "なし"
        print(
            f"OK: 受付台帳に記録しました（{ledger_path}）: ファイルID {file_id}、支払番号 {len(report.references):,} 件"
        )
    elif args.no_ledger:
        print(
            "注意: --no-ledger のため受付台帳を使っていません。二重実行の確認も記録もしていません（受付ではありません）"
        )
    else:
        print("注意: 受付台帳には記録していません（受付には --identity が必要です）")
