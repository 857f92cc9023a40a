"""Importing a SIM vendor's key file of any size: local checks first, then chunked requests.

``POST /v1/sims/import`` is all or nothing per request (one transaction). A file of a
million SIMs is not sent as one request: its transaction would hold SQLite's single write
lock for about a minute, so every device delivery queued behind it would wait (and fail
after the 30 s busy timeout), and the server would hold the whole file in memory. So a
file larger than one chunk is imported chunk by chunk, each chunk one request and one
transaction (chunk-level atomicity), after the whole file has passed the same row checks
the service applies (ICCID format and Luhn digit, key lengths, tags, duplicates): a
malformed file commits nothing. What can still fail part-way is what only the database
knows (a tag already present with a different key, a concurrent import); the error then
names every clashing file row (the first 20) and how many rows were committed. A key the SIM
already holds (same tag, same bytes) is left unchanged, so importing the file again after
fixing the named rows is safe; ``start_row`` merely skips what is already in.

CSV: header ``iccid,psk[,tag,kic,kid]`` (as the service). JSON: a list of row objects, or
``{"sims": [...]}``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._client import ServiceClient, ServiceClientError
from ._errors import BadRequest
from ._schemas import parse_iccid, parse_key_hex, parse_tag

__all__ = ["DEFAULT_CHUNK_ROWS", "ImportError_", "import_key_file"]

DEFAULT_CHUNK_ROWS = 20_000  # <= ~5 MB of CSV with every column (the request cap is 8 MB)
_CSV_COLUMNS = {"iccid", "psk", "tag", "kic", "kid"}
_ROW = re.compile(r"(^|; )row (\d+): ")


class ImportError_(Exception):  # noqa: N801 (ImportError is a builtin)
    """An import stopped: ``committed`` rows (from ``start_row``) are in the service."""

    def __init__(self, message: str, committed: int) -> None:
        super().__init__(message)
        self.committed = committed


@dataclass(frozen=True)
class _Chunk:
    first_row: int  # file row number (1-based, data rows) of its first row
    rows: int
    payload: str | list[dict[str, Any]]


def _check_row(n: int, row: dict[str, Any], force: bool, seen: set[tuple[str, Any]],
               seen_iccids: set[str]) -> None:
    try:
        iccid = parse_iccid(row.get("iccid"), force=force)
        parse_key_hex(row.get("psk"), "psk")
        tag = parse_tag(row["tag"]) if row.get("tag") not in (None, "") else None
        for kind in ("kic", "kid"):
            if row.get(kind) not in (None, ""):
                parse_key_hex(row[kind], kind)
    except BadRequest as exc:
        raise ImportError_(f"row {n}: {exc.detail}", 0) from None
    if (iccid, tag) in seen or (tag is None and iccid in seen_iccids):
        raise ImportError_(f"row {n}: ICCID {iccid} appears twice", 0)
    seen.add((iccid, tag))
    seen_iccids.add(iccid)


def _csv_chunks(path: Path, chunk_rows: int, force: bool, start_row: int,
                check_only: bool) -> Iterator[_Chunk]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = [f.strip().lower() for f in next(reader, [])]
        if "iccid" not in header or "psk" not in header:
            raise ImportError_("CSV key file needs a header with columns iccid and psk", 0)
        unknown = set(header) - _CSV_COLUMNS
        if unknown:
            raise ImportError_(f"CSV key file: unknown column(s) {', '.join(sorted(unknown))}",
                               0)
        seen: set[tuple[str, Any]] = set()
        seen_iccids: set[str] = set()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        first, count = start_row, 0
        try:
            for n, values in enumerate(reader, 1):
                if n < start_row:
                    continue
                if len(values) != len(header):
                    raise ImportError_(f"row {n}: wrong number of columns", 0)
                row = dict(zip(header, (v.strip() for v in values), strict=True))
                if check_only:
                    _check_row(n, row, force, seen, seen_iccids)
                    continue
                if count == 0:
                    buf.seek(0)
                    buf.truncate()
                    writer.writerow(header)
                    first = n
                writer.writerow(row.values())
                count += 1
                if count == chunk_rows:
                    yield _Chunk(first, count, buf.getvalue())
                    count = 0
        except csv.Error as exc:
            raise ImportError_(f"CSV key file is malformed: {exc}", 0) from None
        if count:
            yield _Chunk(first, count, buf.getvalue())


def _json_chunks(path: Path, chunk_rows: int, force: bool, start_row: int,
                 check_only: bool) -> Iterator[_Chunk]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise ImportError_(f"{path}: not JSON: {exc}", 0) from None
    if isinstance(data, dict) and set(data) == {"sims"}:
        data = data["sims"]
    if not isinstance(data, list):
        raise ImportError_("expected a JSON list of SIM rows (or {\"sims\": [...]})", 0)
    seen: set[tuple[str, Any]] = set()
    seen_iccids: set[str] = set()
    for i in range(start_row - 1, len(data), chunk_rows):
        rows = data[i:i + chunk_rows]
        if check_only:
            for n, row in enumerate(rows, i + 1):
                if not isinstance(row, dict):
                    raise ImportError_(f"row {n}: must be an object", 0)
                _check_row(n, row, force, seen, seen_iccids)
        else:
            yield _Chunk(i + 1, len(rows), rows)


def import_key_file(
    client: ServiceClient, path: str | Path, *, force: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS, start_row: int = 1,
    progress: Callable[[int, dict[str, int]], None] | None = None,
) -> dict[str, int]:
    """Import a vendor key file (CSV, or JSON by its ``.json`` suffix).

    Every row is checked locally first; then chunks of ``chunk_rows`` rows go to
    ``POST /v1/sims/import``, one transaction each (see the module comment for why).

    Args:
        start_row: first data row to import (1-based), to resume after a failure.
        progress: called after each committed chunk with (rows done, totals so far).

    Returns:
        ``{"sims_created", "psks_added", "unchanged", "requests"}`` summed over the chunks
        (unchanged: PSKs the SIMs already held, e.g. a file imported twice).

    Raises:
        ImportError_: a row failed the local checks (nothing sent) or the service refused a
            chunk (``committed`` rows before it are in; the message names the file row).
        ServiceClientError: any other refusal (authentication, ...), before any chunk.
    """
    path = Path(path)
    if chunk_rows < 1 or start_row < 1:
        raise ValueError("chunk_rows and start_row must be >= 1")
    chunks = _json_chunks if path.suffix.lower() == ".json" else _csv_chunks
    for _ in chunks(path, chunk_rows, force, start_row, True):  # checks the whole file
        pass
    totals = {"sims_created": 0, "psks_added": 0, "unchanged": 0, "requests": 0}
    done = 0
    for chunk in chunks(path, chunk_rows, force, start_row, False):
        try:
            out = client.import_psks(chunk.payload, force=force)  # type: ignore[arg-type]
        except ServiceClientError as exc:
            about_rows = _ROW.match(exc.detail) is not None
            if not about_rows and done == 0:
                raise  # not about a row (authentication, ...) and nothing committed
            # the service numbers the rows of its chunk: every one back to file rows
            where = _ROW.sub(lambda m, first=chunk.first_row:
                             f"{m.group(1)}row {first + int(m.group(2)) - 1}: ", exc.detail)
            if done == 0:
                after = "nothing was imported; fix the rows named and import the file again"
            else:
                after = (f"{done} row(s) from row {start_row} were imported before this chunk; "
                         f"fix the rows named and import the file again (rows already in are "
                         f"left unchanged), or add --start-row {start_row + done} to skip them")
            raise ImportError_(f"{where} ({exc.code}); {after}", done) from None
        done += chunk.rows
        totals["sims_created"] += out["sims_created"]
        totals["psks_added"] += out["psks_added"]
        totals["unchanged"] += out.get("unchanged", 0)
        totals["requests"] += 1
        if progress is not None:
            progress(done, totals)
    if totals["requests"] == 0:
        raise ImportError_("key file holds no rows", 0)
    return totals
