"""DuckDB fast path: parse and normalise a whole LLaVA / ms-swift / ShareGPT JSON file in SQL.

DuckDB's JSON reader streams the file in parallel C++; this module turns each object into the
`NORM_SCHEMA` columns with the same rules as the Python normaliser (normalize.py). It only
answers for files it can read *completely and cleanly*: any object with an unusual shape (a
non-string role, a float id, an image given as a dict, a turn without content, ...) or any
parse error returns None, and the caller runs the Python path, which either handles the oddity
or raises the precise error (sample index, line, fix). So the fast path never decides an error.
"""

from __future__ import annotations

import json
import re

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from store.ingest.formats import IMAGE_TOKEN, Spec
from store.ingest.normalize import BLANKS, NORM_SCHEMA
from store.sql import literal

_SAFE_KEY = re.compile(r'^[^"\\\x00-\x1f]+$')
_MAX_OBJECT = 64 << 20  # bytes; a larger single sample goes the Python way


def _all(list_expr: str, pred: str) -> str:
    return f"coalesce(list_bool_and(list_transform({list_expr}, lambda x: {pred})), true)"


def usable(spec: Spec) -> bool:
    """Whether this spec's key names can be spelled as JSON paths (they nearly always can)."""
    keys = [spec.id_key, spec.image_key, spec.conv_key, spec.system_key, spec.task_key]
    keys += [spec.role_key, spec.content_key, *spec.roles]
    return spec.conv_key is not None and all(k is None or _SAFE_KEY.match(k) for k in keys)


def _sql(spec: Spec, path: str, json_format: str) -> str:
    """One query: parse each object once (from_json into JSON-typed fields), check every value's
    type, then build the normalised columns."""
    conv = spec.conv_key
    assert conv is not None
    fields = {
        k: "JSON" for k in (spec.id_key, spec.image_key, conv, spec.task_key, spec.system_key) if k
    }
    turn = {spec.role_key: "JSON", spec.content_key: "JSON"}
    roles = " ".join(f"WHEN {literal(src)} THEN {literal(dst)}" for src, dst in spec.roles.items())
    blanks = " || ".join(f"chr({ord(c)})" for c in BLANKS)
    ws = "[ \\t\\n\\r\\f\\v]*"
    token_re = literal(ws + re.escape(IMAGE_TOKEN) + ws)
    known = "[" + ", ".join(literal(k) for k in sorted(spec.known)) + "]::VARCHAR[]"

    def field(key: str | None) -> str:
        return f'o."{key}"' if key else "NULL::JSON"

    def text_or_null(key: str | None) -> str:  # a non-empty string value, else NULL
        f = field(key)
        return f"CASE WHEN json_type({f}) = 'VARCHAR' THEN nullif({f} ->> '$', '') END"

    oid, img, cv = field(spec.id_key), field(spec.image_key), field(conv)
    x_role, x_content = f'x."{spec.role_key}"', f'x."{spec.content_key}"'
    images_ok = _all("ij", "json_type(x) = 'VARCHAR'")
    modelled = f"[{literal(spec.role_key)}, {literal(spec.content_key)}]::VARCHAR[]"
    turns_ok = " AND ".join(
        [
            _all("tj", "x IS NOT NULL"),
            # a turn with other keys (ms-swift `loss`): the Python path keeps them in `extra`
            _all(
                "tr",
                f"len(list_filter(json_keys(x), lambda k: NOT list_contains({modelled}, k))) = 0",
            ),
            _all("tj", f"json_type({x_role}) = 'VARCHAR'"),
            _all("tj", f"(CASE {x_role} ->> '$' {roles} END) IS NOT NULL"),
            _all("tj", f"coalesce(json_type({x_content}), 'NULL') IN ('VARCHAR', 'NULL')"),
        ]
    )
    role, content = f't."{spec.role_key}"', f't."{spec.content_key}"'
    return f"""
    WITH src AS (
        SELECT json AS j FROM read_json_objects({literal(path)}, format = '{json_format}',
                                                maximum_object_size = {_MAX_OBJECT})
    ),
    obj AS (
        SELECT j, json_type(j) = 'OBJECT' AS is_obj, json_keys(j) AS keys,
               from_json(j, {literal(json.dumps(fields))}) AS o
        FROM src
    ),
    typed AS (
        SELECT *,
            coalesce(json_type({oid}), 'NULL') AS id_t,
            coalesce(json_type({img}), 'NULL') AS img_t,
            coalesce(json_type({cv}), 'NULL') AS conv_t
        FROM obj
    ),
    parts AS (
        SELECT *,
            CASE WHEN conv_t = 'ARRAY' THEN from_json({cv}, {literal(json.dumps([turn]))}) END AS tj,
            CASE WHEN conv_t = 'ARRAY' THEN from_json({cv}, '["JSON"]') END AS tr,
            CASE WHEN img_t = 'ARRAY' THEN from_json({img}, '["JSON"]') END AS ij
        FROM typed
    ),
    parsed AS (
        SELECT
            is_obj
            AND id_t IN ('VARCHAR', 'BIGINT', 'UBIGINT', 'NULL')
            AND (img_t IN ('VARCHAR', 'NULL') OR
                 (img_t = 'ARRAY' AND {images_ok}))
            AND (conv_t = 'NULL' OR (conv_t = 'ARRAY' AND {turns_ok}))
                AS clean,
            CASE WHEN id_t = 'VARCHAR' THEN nullif({oid} ->> '$', '')
                 WHEN id_t IN ('BIGINT', 'UBIGINT') THEN {oid} ->> '$' END AS orig_id,
            CASE WHEN img_t = 'VARCHAR' THEN
                     (CASE WHEN {img} ->> '$' = '' THEN [] ELSE [{img} ->> '$'] END)
                 WHEN img_t = 'ARRAY' THEN list_transform(ij, lambda x: x ->> '$')
                 ELSE [] END::VARCHAR[] AS images_raw,
            coalesce(list_transform(tj, lambda t: {{
                'role': CASE {role} ->> '$' {roles} END,
                'content': coalesce({content} ->> '$', '')}}), []) AS turns0,
            {text_or_null(spec.system_key)} AS system,
            {text_or_null(spec.task_key)} AS task,
            len(list_filter(keys, lambda k: NOT list_contains({known}, k))) > 0 AS has_extra,
            conv_t <> 'NULL' AS present,
            j
        FROM parts
    ),
    turned AS (
        SELECT *, CASE WHEN system IS NOT NULL
                       THEN list_prepend({{'role': 'system', 'content': system}}, turns0)
                       ELSE turns0 END AS turns
        FROM parsed
    ),
    firsts AS (
        SELECT *,
            list_filter(turns, lambda t: t.role = 'user')[1].content AS q,
            list_filter(turns, lambda t: t.role = 'assistant')[1].content AS answer
        FROM turned
    )
    SELECT
        clean,
        orig_id,
        images_raw,
        to_json(turns)::VARCHAR AS conversation,
        coalesce(CASE WHEN contains(q, {literal(IMAGE_TOKEN)})
                      THEN trim(regexp_replace(q, {token_re}, ' ', 'g'), {blanks})
                      ELSE trim(q, {blanks}) END, '') AS question,
        answer,
        coalesce(list_sum(list_transform(turns, lambda t:
            (length(t.content) - length(replace(t.content, {literal(IMAGE_TOKEN)}, '')))
            // {len(IMAGE_TOKEN)})), 0)::INTEGER AS n_image_tokens,
        least(len(list_filter(turns, lambda t: t.role = 'user')),
              len(list_filter(turns, lambda t: t.role = 'assistant')))::INTEGER AS n_turns,
        coalesce(list_sum(list_transform(turns, lambda t: length(t.content))), 0)::BIGINT
            AS chars,
        task,
        CASE WHEN has_extra THEN j::VARCHAR END AS extra_src,
        present
    FROM firsts
    """


def read(path: str, spec: Spec, json_lines: bool) -> pa.Table | None:
    """The NORM_SCHEMA table of `path`, or None when the Python path must read it."""
    if not usable(spec):
        return None
    sql = _sql(spec, path, "newline_delimited" if json_lines else "array")
    con = duckdb.connect()
    try:
        table = con.sql(sql).to_arrow_table()
    except duckdb.Error:
        return None  # malformed input: the Python reader names the line
    finally:
        con.close()
    if table.num_rows == 0:
        return None
    clean = table.column("clean")
    if clean.null_count or not pc.all(clean).as_py():
        return None
    known = spec.known
    extra: list[str | None] = []
    for src in table.column("extra_src").to_pylist():
        if src is None:
            extra.append(None)
            continue
        try:
            obj = json.loads(src)
        except RecursionError:
            return None  # nested past Python's limit: the Python reader names the sample
        rest = {k: v for k, v in obj.items() if k not in known}
        extra.append(json.dumps(rest, ensure_ascii=False, default=str) if rest else None)
    columns = {name: table.column(name) for name in NORM_SCHEMA.names if name != "extra"}
    columns["extra"] = pa.chunked_array([pa.array(extra, type=pa.string())])
    return pa.table([columns[f.name].cast(f.type) for f in NORM_SCHEMA], schema=NORM_SCHEMA)
