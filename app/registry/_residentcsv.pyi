# Types of the C extension app/registry/_residentcsv.c (built by setup.py), for the type checker.
# Its only caller is app/registry/residentcsv.py; keep this in step with the PyArg_ParseTuple format there.
from typing_extensions import Buffer

def encode(
    body: Buffer,
    columns: tuple[str, ...],
    relationships: tuple[str, ...],
    removal_reasons: tuple[str, ...],
    /,
) -> bytes | None:
    """The CSV body (UTF-8, from line 2 on) as a PostgreSQL binary COPY payload of the 16 residents columns,
    sorted by resident_code; None if any line breaks a rule or the file is not plainly shaped. Raises
    ValueError for an unknown, repeated or missing required column and TypeError for a non-str name."""
