"""The per-row (Python) normaliser: source records -> the columns every ingest path produces.

Both this path and the DuckDB fast path (fast.py) emit `NORM_SCHEMA`; flags, ids, image paths
and the fingerprint are then computed once, column-wise, in finish.py. The text rules here
(compact conversation JSON, ASCII-blank stripping) are the ones DuckDB applies, so both paths
give byte-identical rows.
"""

from __future__ import annotations

import re
from json.encoder import encode_basestring as _quote  # C, ensure_ascii=False, as DuckDB

import pyarrow as pa

from store.ingest.formats import IMAGE_TOKEN

BLANKS = " \t\n\r\f\v"  # ASCII blanks: what DuckDB's regex \s and our trim() agree on
_TOKEN_RE = re.compile(r"[ \t\n\r\f\v]*" + re.escape(IMAGE_TOKEN) + r"[ \t\n\r\f\v]*")

NORM_SCHEMA = pa.schema(
    [
        ("orig_id", pa.string()),  # NULL: the source has none
        ("images_raw", pa.list_(pa.string())),
        ("conversation", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),  # NULL: no assistant turn
        ("n_image_tokens", pa.int32()),
        ("n_turns", pa.int32()),
        ("chars", pa.int64()),  # characters over all turns (for long_text)
        ("task", pa.string()),
        ("extra", pa.string()),
        ("present", pa.bool_()),  # the format's required field was there
    ]
)


def conversation_json(turns: list[tuple[str, str]]) -> str:
    """Compact JSON of [{"role", "content"}], exactly as DuckDB's to_json writes it."""
    return "[" + ",".join([f'{{"role":"{r}","content":{_quote(c)}}}' for r, c in turns]) + "]"


def strip_tokens(text: str) -> str:
    """The text with every <image> token and the blanks around it removed, then trimmed."""
    if IMAGE_TOKEN not in text:
        return text.strip(BLANKS)
    return _TOKEN_RE.sub(" ", text).strip(BLANKS)


class RowNormaliser:
    """Collects normalised rows and hands them over as Arrow batches of NORM_SCHEMA."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.batches: list[pa.RecordBatch] = []
        self._reset()

    def _reset(self) -> None:
        self.cols: dict[str, list] = {name: [] for name in NORM_SCHEMA.names}
        self.pending = 0

    def add(self, sample: tuple) -> None:
        orig_id, raw_images, turns, task, extra, present = sample
        question = answer = None
        n_tokens = n_user = n_assistant = chars = 0
        for role, content in turns:
            chars += len(content)
            n_tokens += content.count(IMAGE_TOKEN)
            if role == "user":
                n_user += 1
                if question is None:
                    question = strip_tokens(content)
            elif role == "assistant":
                n_assistant += 1
                if answer is None:
                    answer = content
        c = self.cols
        c["orig_id"].append(orig_id)
        c["images_raw"].append(raw_images)
        c["conversation"].append(conversation_json(turns))
        c["question"].append(question or "")
        c["answer"].append(answer)
        c["n_image_tokens"].append(n_tokens)
        c["n_turns"].append(min(n_user, n_assistant))
        c["chars"].append(chars)
        c["task"].append(task)
        c["extra"].append(extra)
        c["present"].append(present)
        self.pending += 1
        if self.pending >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            # from_arrays: from_pydict spends more on checks than on converting.
            arrays = [pa.array(self.cols[f.name], type=f.type) for f in NORM_SCHEMA]
            self.batches.append(pa.RecordBatch.from_arrays(arrays, schema=NORM_SCHEMA))
            self._reset()

    def table(self) -> pa.Table:
        self.flush()
        return pa.Table.from_batches(self.batches, schema=NORM_SCHEMA)
