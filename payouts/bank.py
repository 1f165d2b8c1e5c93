"""What a bank's operations team runs on a sealed file from a municipality.

`verify` checks everything the bank can check before loading the file: the manifest's
signature, the ciphertext against the manifest, and (with the bank's age identity) the
plaintext's hash, its strict Zengin parse and its control totals against the manifest.
`decrypt` writes the plaintext for the bank's loader, never leaving a partial file;
`inspect` summarises a plaintext by bank and branch without showing names or accounts.

The lead mounts `main(argv)` as `kyufu bank ...`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyrage
from pyrage import x25519

from payouts import sealing, zengin

_READ_BLOCK = 1024 * 1024
_IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
# pyrage 1.4.0's text for "none of the given identities opens this file" (age's NoMatchingKeys).
_NO_MATCHING_KEYS = "No matching keys found"


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
    return report


def _parse(plaintext: bytes, error_class: type[BankError]):
    try:
        return zengin.parse(plaintext)
    except zengin.ZenginParseError as exc:
        # zengin's messages give positions and field names, not field contents.
        raise error_class("zengin_parse_error", f"全銀ファイルとして不正です: {exc}") from None


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
    parsed = _parse(Path(plaintext_path).read_bytes(), BankError)
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
    p.add_argument("--identity", type=Path, help="銀行の age 秘密鍵ファイル")
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
            report = verify(args.age_file, args.manifest, args.public_key, args.identity)
            m = report.manifest
            print(f"OK: 署名（鍵 {report.key_id}）と暗号文 SHA-256 を確認しました")
            print(f"バッチ {m.batch_id}（団体コード {m.municipality_code}）取組日 {m.transfer_date.isoformat()}")
            print(f"件数 {m.record_count:,} 件 / 合計 {m.total_yen:,} 円 / 承認者 {m.approved_by}")
            if report.plaintext_checked:
                print("OK: 復号した平文のハッシュ・全銀形式・件数・合計・取組日がマニフェストと一致しました")
            else:
                print("注意: 秘密鍵が指定されていないため、平文の内容は確認していません（--identity）")
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
    return 0
