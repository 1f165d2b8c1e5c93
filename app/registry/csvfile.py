"""Reading registry CSV files: encoding (UTF-8 or CP932, with or without BOM), header, and streaming the
body into PostgreSQL with COPY. Values are never decoded in Python here: PostgreSQL parses and
transcodes the body, so a million-line extract costs one COPY."""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from app.registry.errors import ImportRejected, LineError

UTF8_BOM = b"\xef\xbb\xbf"
# Enough of the file to tell UTF-8 from CP932 (Japanese text is almost never valid in both).
_SNIFF_BYTES = 1 << 20


@dataclass(frozen=True)
class Column:
    header: str  # the Japanese header in the file
    name: str  # the staging / table column
    required: bool  # the header must be present (its values may still be optional)


@dataclass(frozen=True)
class CsvBody:
    pg_encoding: str  # 'UTF8' or 'SJIS' (PostgreSQL's SJIS is Microsoft's CP932)
    columns: list[str]  # staging column names in file order
    body_offset: int  # where line 2 starts


def _decodes(data: bytes, encoding: str) -> bool:
    # Incremental, not final: the sniffed prefix may end in the middle of a character.
    try:
        codecs.getincrementaldecoder(encoding)().decode(data, final=False)
        return True
    except UnicodeDecodeError:
        return False


def _shown(name: str) -> str:
    # An unknown "column name" is operator input of any length (a file without its header line would show
    # the first resident's fields here): the report shows at most a short, printable prefix.
    printable = "".join(ch if ch.isprintable() else "?" for ch in name[:_SHOWN_CHARS])
    return (printable + ("…" if len(name) > _SHOWN_CHARS else "")) or "(空の列名)"


_SHOWN_CHARS = 32


def read_header(data: bytes, spec: list[Column]) -> CsvBody:
    """Detect the encoding and map the header to columns; raise ImportRejected naming every problem."""
    start = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    sniff = data[start : start + _SNIFF_BYTES]
    if _decodes(sniff, "utf-8"):
        py_enc, pg_enc = "utf-8", "UTF8"
    elif _decodes(sniff, "cp932"):
        py_enc, pg_enc = "cp932", "SJIS"
    else:
        raise ImportRejected([LineError(1, "(ファイル)", "encoding")])
    end = data.find(b"\n", start)
    header_bytes = data[start:] if end < 0 else data[start:end]
    names = [h.strip().strip('"').strip() for h in header_bytes.decode(py_enc).rstrip("\r").split(",")]
    by_header = {c.header: c for c in spec}
    errors, seen, columns = [], set(), []
    for name in names:
        col = by_header.get(name)
        if col is None:
            errors.append(LineError(1, _shown(name), "unknown_column"))
        elif col.name in seen:
            errors.append(LineError(1, name, "duplicate_column"))
        else:
            seen.add(col.name)
            columns.append(col.name)
    errors += [LineError(1, c.header, "missing_column") for c in spec if c.required and c.name not in seen]
    if errors:
        raise ImportRejected(errors)
    body_offset = len(data) if end < 0 else end + 1
    if not data[body_offset:].strip():
        raise ImportRejected([LineError(2, "(ファイル)", "empty_file")])
    return CsvBody(pg_enc, columns, body_offset)


_COPY_LINE = re.compile(r"line (\d+)")

# A quote, or a line break (CRLF counts once).
_QUOTE_OR_BREAK = re.compile(rb'"|\r\n|\n|\r')


def record_start_lines(data: bytes, records: set[int]) -> dict[int, int]:
    """The physical line (as an editor numbers it) on which each of `records` starts; records are numbered
    as COPY, the staging tables and csv count them (the header is 1), which differs from the lines once a
    quoted field holds a line break (an address over two lines). Every quote toggles being inside quotes and
    a break outside quotes ends a record, as COPY's CSV mode splits lines; the doubled quote of an escaped
    quote toggles twice. Byte-wise, which is safe for CP932 too (its second bytes are never a quote, CR or
    LF). Records past the end keep their number."""
    wanted = {r for r in records if r >= 2}
    if not wanted or b'"' not in data:
        return {}
    last = max(wanted)
    starts: dict[int, int] = {}
    record, line, quoted = 1, 1, False
    for match in _QUOTE_OR_BREAK.finditer(data, len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0):
        if match.group() == b'"':
            quoted = not quoted
            continue
        line += 1
        if quoted:
            continue
        record += 1
        if record in wanted:
            starts[record] = line
            if record == last:
                break
    return starts


class _BodySource(io.BytesIO):
    """The file from line 2 on, for COPY; reports (bytes sent, body bytes, stage) as asyncpg reads it."""

    def __init__(self, data: bytes, body: CsvBody, progress: Callable[..., None] | None, stage: str):
        super().__init__(data)
        self.seek(body.body_offset)
        self._offset, self._size = body.body_offset, len(data) - body.body_offset
        self._progress, self._stage = progress, stage
        if progress is not None:
            progress(0, self._size, stage)

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if self._progress is not None:
            self._progress(self.tell() - self._offset, self._size, self._stage)
        return chunk


def body_source(
    data: bytes, body: CsvBody, progress: Callable[..., None] | None = None, stage: str = "COPY"
) -> io.BytesIO:
    """A file-like source of the body for copy_to_table (see app/progress.py for `progress`)."""
    return _BodySource(data, body, progress, stage)


async def copy_body(
    conn: asyncpg.Connection, table: str, data: bytes, body: CsvBody, progress: Callable[..., None] | None = None
) -> None:
    """COPY the body into a staging table. A line PostgreSQL cannot even split into fields (wrong column
    count, bytes invalid in the encoding) rejects the file with its line number; the server's own message
    is not passed on because it quotes the offending value."""
    source = body_source(data, body, progress)
    try:
        await conn.copy_to_table(table, source=source, columns=body.columns, format="csv", encoding=body.pg_encoding)
    except UNSPLITTABLE as exc:
        raise copy_rejection(exc) from None


# What COPY raises for a line it cannot split into fields or decode (any table, any column types).
UNSPLITTABLE = (
    asyncpg.BadCopyFileFormatError,
    asyncpg.CharacterNotInRepertoireError,
    asyncpg.UntranslatableCharacterError,
)


def copy_rejection(exc: Exception) -> ImportRejected:
    """The rejection of a file for one of the UNSPLITTABLE errors, with its line number."""
    match = _COPY_LINE.search(getattr(exc, "context", None) or "")
    line = int(match.group(1)) + 1 if match else 0  # +1: the header is line 1
    reason = "column_count" if isinstance(exc, asyncpg.BadCopyFileFormatError) else "encoding"
    return ImportRejected([LineError(line, "(行全体)", reason)])
