"""Streaming record readers (JSON array, JSON Lines, Parquet) that know where each record came from.

Nothing here builds the whole file in memory: a JSON array is decoded one element at a time from
a sliding text buffer, so a 665K-sample LLaVA file costs one batch of dicts, not 665K of them.
Every record carries its 0-based index and 1-based line, and every error names both.
"""

from __future__ import annotations

import codecs
import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from store.errors import IngestError

CHUNK = 1 << 22  # 4 MiB of text per read: large enough that re-parsing a split element is rare
_WS = " \t\r\n"
# An element that fails to parse this far before the end of the buffer is broken, not cut off
# by the chunk boundary (no JSON token other than a string is this long).
_FAR_FROM_END = 1 << 20


@dataclass
class Record:
    index: int  # 0-based position in the file
    line: int  # 1-based line where the record starts
    value: object  # what json / pyarrow decoded


class Progress:
    """Bytes consumed so far, read by the driver to report progress."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0


_DEEP = "lists or objects nested deeper than can be read (Python's limit is about 1000 levels)"
_FLATTEN = "Flatten or remove that sample and ingest again."


def _fail(path: Path, where: str, what: str, fix: str) -> IngestError:
    return IngestError(f"{path}: {where}: {what}. {fix}")


class _TextChunks:
    """Decodes a binary file chunk by chunk as strict UTF-8, naming the byte and line of bad bytes."""

    def __init__(self, path: Path, progress: Progress) -> None:
        self.path = path
        self.f = path.open("rb")
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.offset = 0  # bytes read so far
        self.lines_read = 0  # newlines in text returned so far
        self.eof = False
        self.progress = progress
        self.first = True

    def read(self, size: int) -> str:
        if self.eof:
            return ""
        raw = self.f.read(size)
        pending = len(self.decoder.getstate()[0])
        start = self.offset - pending
        self.offset += len(raw)
        self.progress.done = self.offset
        final = len(raw) < size
        try:
            text = self.decoder.decode(raw, final=final)
        except UnicodeDecodeError as exc:
            bad = start + exc.start
            self.f.seek(0)
            line = self.f.read(bad).count(b"\n") + 1
            raise _fail(
                self.path,
                f"line {line} (byte {bad})",
                f"bytes that are not UTF-8 ({exc.object[exc.start : exc.start + 4]!r})",
                "Re-encode the file as UTF-8 (for example `iconv -f latin1 -t utf-8`).",
            ) from None
        if self.first:
            text = text.lstrip("\ufeff")  # a UTF-8 byte-order mark is legal noise
            self.first = False
        if final:
            self.eof = True
            self.f.close()
        return text

    def close(self) -> None:
        self.f.close()


def first_char(path: Path) -> str:
    """The first non-blank character of a text file ('' when it is empty or blank)."""
    with path.open("rb") as f:
        head = f.read(4096).decode("utf-8", errors="replace").lstrip("\ufeff" + _WS)
        while not head:
            more = f.read(1 << 16)
            if not more:
                return ""
            head = more.decode("utf-8", errors="replace").lstrip(_WS)
    return head[0]


class _Buffer:
    """A text window over the file with an incrementally maintained line count."""

    def __init__(self, src: _TextChunks) -> None:
        self.src = src
        self.text = src.read(CHUNK)
        self.mark = 0  # position whose line number is `mark_line`
        self.mark_line = 1

    def line(self, p: int) -> int:
        if p >= self.mark:
            self.mark_line += self.text.count("\n", self.mark, p)
        else:
            self.mark_line -= self.text.count("\n", p, self.mark)
        self.mark = p
        return self.mark_line

    def refill(self, keep_from: int, size: int) -> None:
        """Drop text before `keep_from` and append `size` more characters."""
        self.line(keep_from)
        self.text = self.text[keep_from:] + self.src.read(size)
        self.mark = 0

    def skip_ws(self, p: int) -> int:
        text = self.text
        n = len(text)
        while p < n and text[p] in _WS:
            p += 1
        return p

    def skip_ws_refill(self, p: int) -> int:
        """Skip blanks, reading on as needed; returns len(text) only at the end of the file."""
        p = self.skip_ws(p)
        while p >= len(self.text) and not self.src.eof:
            self.refill(p, CHUNK)
            p = self.skip_ws(0)
        return p


def iter_json_array(path: Path, progress: Progress) -> Iterator[Record]:
    """The elements of a top-level JSON array, one at a time."""
    src = _TextChunks(path, progress)
    b = _Buffer(src)
    decoder = json.JSONDecoder()
    index = 0

    def where(p: int) -> str:
        return f"line {b.line(p)}"

    try:
        pos = b.skip_ws_refill(0)
        if b.text[pos : pos + 1] != "[":
            got = "an empty file" if pos >= len(b.text) else f"{b.text[pos]!r}"
            raise _fail(
                path,
                where(pos),
                f"expected a JSON array of samples ('['), found {got}",
                "LLaVA data is one JSON list of objects; use a .jsonl file for one object per "
                "line.",
            )
        pos += 1
        expect_value = True  # right after '[' or ','
        first = True
        while True:
            pos = b.skip_ws_refill(pos)
            if pos >= len(b.text):
                raise _fail(
                    path,
                    f"{where(pos)}, after sample {index - 1}" if index else where(pos),
                    "the file ends inside the JSON array (truncated?)",
                    "Re-download or re-export the file; a complete file ends with ']'.",
                )
            ch = b.text[pos]
            if ch == "]" and (first or not expect_value):
                pos = b.skip_ws_refill(pos + 1)
                if pos < len(b.text):
                    raise _fail(
                        path,
                        where(pos),
                        f"unexpected {b.text[pos]!r} after the closing ']'",
                        "Remove what follows the array; the file must hold one JSON list.",
                    )
                return
            if not expect_value:
                if ch != ",":
                    raise _fail(
                        path,
                        f"{where(pos)}, after sample {index - 1}",
                        f"expected ',' or ']' between samples, found {ch!r}",
                        "Fix the JSON syntax (a missing comma?) and ingest again.",
                    )
                pos += 1
                expect_value = True
                continue
            read_size = CHUNK
            while True:
                try:
                    value, end = decoder.raw_decode(b.text, pos)
                    break
                except RecursionError:
                    raise _fail(path, f"sample {index}, {where(pos)}", _DEEP, _FLATTEN) from None
                except json.JSONDecodeError as exc:
                    n = len(b.text)
                    near_end = exc.pos >= n - _FAR_FROM_END or exc.msg.startswith(
                        "Unterminated string"
                    )
                    if src.eof or not near_end:
                        cut = src.eof and (
                            exc.pos >= len(b.text.rstrip()) - 1
                            or exc.msg.startswith("Unterminated string")
                        )
                        raise _fail(
                            path,
                            f"sample {index}, {where(exc.pos)}",
                            "the file ends in the middle of a sample (truncated?)"
                            if cut
                            else f"invalid JSON ({exc.msg})",
                            "Re-download or re-export the file."
                            if cut
                            else "Fix the JSON at that line (`python -m json.tool FILE` shows "
                            "the context) and ingest again.",
                        ) from None
                    # The element runs past the buffer: read on, doubling, so a huge element
                    # is not re-parsed once per 4 MiB.
                    b.refill(pos, read_size)
                    pos = 0
                    read_size *= 2
            yield Record(index, b.line(pos), value)
            index += 1
            first = False
            expect_value = False
            pos = end
            if pos > CHUNK:  # drop consumed text so the window stays a few MiB
                b.refill(pos, 0)
                pos = 0
    finally:
        src.close()


def iter_json_lines(path: Path, progress: Progress) -> Iterator[Record]:
    """One JSON value per non-blank line."""
    index = 0
    done = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            done += len(raw)
            if lineno % 4096 == 0:
                progress.done = done
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _fail(
                    path,
                    f"line {lineno} (byte {done - len(raw) + exc.start})",
                    f"bytes that are not UTF-8 ({raw[exc.start : exc.start + 4]!r})",
                    "Re-encode the file as UTF-8 (for example `iconv -f latin1 -t utf-8`).",
                ) from None
            if lineno == 1:
                text = text.lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except RecursionError:
                raise _fail(path, f"sample {index}, line {lineno}", _DEEP, _FLATTEN) from None
            except json.JSONDecodeError as exc:
                if lineno == 1 and text.strip() in ("{", "["):
                    raise _fail(
                        path,
                        "line 1",
                        "this is a pretty-printed JSON document, not JSON Lines",
                        "Samples must be a JSON list of objects ('[...]') or one object per line.",
                    ) from None
                last = not text.endswith("\n")
                raise _fail(
                    path,
                    f"sample {index}, line {lineno}",
                    "the last line is cut off (truncated?)"
                    if last
                    else f"invalid JSON ({exc.msg} at column {exc.colno})",
                    "Re-download or re-export the file."
                    if last
                    else "Each line must be one complete JSON object; fix that line.",
                ) from None
            yield Record(index, lineno, value)
            index += 1
    progress.done = done


def iter_parquet(path: Path, progress: Progress, batch_size: int = 8192) -> Iterator[Record]:
    """Rows of a Parquet file as dicts, one record batch at a time (row number = 'line')."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad footer
        raise _fail(
            path,
            "file footer",
            f"not a readable Parquet file ({exc})",
            "Check the file is complete; re-export it.",
        ) from None
    index = 0
    total_rows = pf.metadata.num_rows or 1
    for batch in pf.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            yield Record(index, index + 1, row)
            index += 1
        progress.done = int(progress.total * index / total_rows)


def check_regular(path: Path) -> None:
    """Refuse FIFOs, sockets and devices: reading one would block or never end."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise _fail(path, "opening it", exc.strerror or str(exc), "Check the path.") from None
    if not stat.S_ISREG(mode):
        kind = (
            "a named pipe (FIFO)"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file"
        )
        raise _fail(
            path,
            "opening it",
            f"it is {kind}, not a regular file",
            "Save the data to a file first (e.g. `cat PIPE > data.jsonl`) and ingest that.",
        )


def iter_records(path: Path, progress: Progress) -> Iterator[Record]:
    """Pick the reader by content: Parquet by extension, '[' = JSON array, '{' = JSON Lines."""
    check_regular(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return iter_parquet(path, progress)
    ch = first_char(path)
    if ch == "[":
        return iter_json_array(path, progress)
    if ch == "{":
        return iter_json_lines(path, progress)
    got = "an empty file" if ch == "" else f"a JSON value starting with {ch!r}"
    raise _fail(
        path,
        "line 1",
        f"expected a JSON list of samples or one JSON object per line, found {got}",
        "Point ingest at the data file itself (LLaVA .json, ms-swift .jsonl, Parquet).",
    )
