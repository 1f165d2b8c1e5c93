"""Domain errors of the registry area. Messages are Japanese, name fields and line numbers, and never
carry a resident's data (the file's values are personal data)."""

from __future__ import annotations

from dataclasses import dataclass


class RegistryError(Exception):
    """Base class: a mistake in the operator's input or request; the message says what to fix."""


@dataclass(frozen=True)
class LineError:
    """One bad line of an imported file: 1-based line number (the header is line 1), column, reason code."""

    line: int
    column: str
    reason: str

    def describe(self) -> str:
        return f"{self.line}行目 {self.column}: {REASONS.get(self.reason, self.reason)} ({self.reason})"


# Reason codes of import errors, with the Japanese text shown to the operator.
REASONS = {
    "encoding": "文字コードが UTF-8 でも CP932（Shift_JIS）でもありません",
    "column_count": "列の数がヘッダーと一致しません",
    "missing_column": "必須の列がありません",
    "unknown_column": "不明な列です",
    "duplicate_column": "列名が重複しています",
    "empty_file": "データ行がありません",
    "required": "値が空です",
    "digits": "桁数または数字の形式が正しくありません",
    "bad_date": "日付の形式が正しくありません（YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD）",
    "unknown_relationship": "続柄が一覧にありません",
    "bad_flag": "世帯主欄は 1（世帯主）か 0 です",
    "head_mismatch": "続柄「世帯主」と世帯主欄が一致しません",
    "multiple_heads": "同じ世帯に世帯主が複数います",
    "not_katakana": "全角カタカナで入力してください",
    "too_long": "長すぎます",
    "bad_sex": "性別は 1（男）, 2（女）, 9（不明）です",
    "duplicate": "住民票コードが重複しています",
    "removal_reason_missing": "消除日があるのに消除事由がありません",
    "removal_without_date": "消除事由があるのに消除日がありません",
    "unknown_removal_reason": "消除事由が一覧にありません",
    "moved_in_before_birth": "住定日が生年月日より前です",
    "removed_before_moved_in": "消除日が住定日より前です",
    "household_change_pair": "前世帯番号と世帯変更日は両方とも入力するか、両方とも空にします",
    "bad_tax_class": "課税区分は 課税, 非課税, 均等割のみ のいずれかです",
    "one_key": "世帯番号か住民票コードのどちらか一方だけを入力してください",
    "bad_account_type": "預金種目は 1（普通）, 2（当座）, 4（貯蓄）, 9（その他）です",
    "kana": "口座名義カナに使用できない文字があります",
}


class ImportRejected(RegistryError):
    """The whole file was refused; nothing of it was written. `errors` lists every bad line."""

    def __init__(self, errors: list[LineError], total: int | None = None):
        self.errors = errors
        self.total = total if total is not None else len(errors)
        super().__init__(f"ファイルを取り込みませんでした（誤り {self.total} 件）。修正して再度取り込んでください。")

    def on_lines(self, starts: dict[int, int]) -> ImportRejected:
        """The same rejection with record numbers replaced by the physical lines in `starts`."""
        return ImportRejected(
            [LineError(starts.get(e.line, e.line), e.column, e.reason) for e in self.errors], self.total
        )


class SnapshotMismatch(RegistryError):
    """The same file was already imported with different parameters (e.g. another fiscal year)."""


class NoSnapshot(RegistryError):
    """No published registry snapshot exists yet for the municipality."""


class ProgramNotFound(RegistryError):
    """The program id does not exist in this municipality."""


class InvalidProgram(RegistryError):
    """A program definition failed validation; the message names the fields."""


class EntitlementNotFound(RegistryError):
    """The entitlement id does not exist in this municipality."""


class DeclineNotAllowed(RegistryError):
    """辞退 is only possible for an open プッシュ型 entitlement before its deadline."""


class ExportTargetExists(RegistryError):
    """`letters export` never overwrites a file: the previous print file may not have been sent yet."""
