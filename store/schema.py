"""Catalog schema as an ordered list of forward migrations; `schema_version` records how far a file got."""

from __future__ import annotations

# Each entry moves the catalog from version i to i+1. Never edit a released entry: append a new one.
MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
    CREATE SEQUENCE IF NOT EXISTS dataset_ids START 1;
    CREATE TABLE IF NOT EXISTS datasets (
        dataset_id   INTEGER PRIMARY KEY,
        name         VARCHAR NOT NULL UNIQUE,
        format       VARCHAR NOT NULL,      -- llava | swift | sharegpt | table
        source_path  VARCHAR NOT NULL,      -- the data file as given (absolute)
        image_root   VARCHAR,               -- what relative image paths resolved against
        created_at   TIMESTAMP NOT NULL,
        updated_at   TIMESTAMP NOT NULL,
        n_samples    BIGINT NOT NULL,
        n_flagged    BIGINT NOT NULL,
        fingerprint  VARCHAR NOT NULL,      -- sha256 over (orig_id, question, answer, images)
        options      VARCHAR                -- JSON: column mapping, tags, reader options
    );
    CREATE TABLE IF NOT EXISTS samples (
        sample_id      BIGINT PRIMARY KEY,  -- stable: (dataset_id, orig_id) keeps its id on re-ingest
        dataset_id     INTEGER NOT NULL,
        orig_id        VARCHAR NOT NULL,    -- the id in the source file (or '#<row>' when it has none)
        position       BIGINT NOT NULL,     -- 0-based row in the source file
        images         VARCHAR[] NOT NULL,  -- resolved absolute paths, in order
        images_raw     VARCHAR[] NOT NULL,  -- paths exactly as written in the source
        conversation   VARCHAR NOT NULL,    -- JSON list of {"role": user|assistant|system, "content": str}
        question       VARCHAR NOT NULL,    -- first user turn, <image> tokens stripped
        answer         VARCHAR NOT NULL,    -- first assistant turn
        n_image_tokens INTEGER NOT NULL,    -- <image> tokens over the whole conversation
        n_turns        INTEGER NOT NULL,    -- user/assistant pairs
        task           VARCHAR,             -- task family when the data has one (demo: yesno, mc, ...)
        flags          VARCHAR[] NOT NULL,  -- missing_image, corrupt_image, image_token_mismatch, ...
        extra          VARCHAR              -- JSON of source fields we do not model (kept for export)
    );
    CREATE INDEX IF NOT EXISTS samples_by_dataset ON samples (dataset_id, orig_id);
    CREATE TABLE IF NOT EXISTS runs (
        run_id      VARCHAR PRIMARY KEY,
        method      VARCHAR NOT NULL,       -- ofa | clipper | baseline:<name> | ofa-apply | finetune | eval
        dataset_id  INTEGER,
        created_at  TIMESTAMP NOT NULL,
        status      VARCHAR NOT NULL,       -- last status seen; the run folder is the truth
        path        VARCHAR NOT NULL,
        params      VARCHAR NOT NULL,       -- JSON, the run's config object
        summary     VARCHAR                 -- JSON written when the run is registered as finished
    );
    CREATE SEQUENCE IF NOT EXISTS decision_seq START 1;
    CREATE TABLE IF NOT EXISTS decisions (
        seq        BIGINT PRIMARY KEY,      -- append order; the latest seq for (run, sample) wins
        run_id     VARCHAR NOT NULL,
        sample_id  BIGINT NOT NULL,
        action     VARCHAR NOT NULL CHECK (action IN ('keep', 'drop', 'clear')),
        scope      VARCHAR NOT NULL,        -- sample | list | group:<column>=<value>
        author     VARCHAR NOT NULL,
        decided_at TIMESTAMP NOT NULL,
        note       VARCHAR
    );
    CREATE TABLE IF NOT EXISTS exports (
        export_id    VARCHAR PRIMARY KEY,
        run_id       VARCHAR,               -- NULL for a whole-dataset export
        dataset_id   INTEGER NOT NULL,
        selection    VARCHAR,
        format       VARCHAR NOT NULL,
        path         VARCHAR NOT NULL,
        n_samples    BIGINT NOT NULL,
        n_decisions  BIGINT NOT NULL,
        last_decision_seq BIGINT,           -- decisions with seq <= this were seen
        sha256       VARCHAR NOT NULL,
        created_at   TIMESTAMP NOT NULL
    );
    """,
    # 2: evaluations of a (base or fine-tuned) model on a held-out dataset, for the
    # selection-vs-accuracy report (CLIPPER Table I). One row per `thresher eval`.
    """
    CREATE TABLE IF NOT EXISTS evaluations (
        eval_id          VARCHAR PRIMARY KEY,   -- the eval run's id
        created_at       TIMESTAMP NOT NULL,
        dataset          VARCHAR NOT NULL,      -- the held-out dataset answered (by name)
        dataset_id       INTEGER,
        model            VARCHAR NOT NULL,      -- base model
        adapter          VARCHAR,               -- LoRA adapter folder; NULL = the base model (zero-shot)
        finetune_run_id  VARCHAR,               -- the fine-tune run that wrote the adapter
        selection_run_id VARCHAR,               -- the run the training manifest was exported from; NULL = whole dataset
        selection        VARCHAR,               -- the selection of that run (P1+W, default, ...)
        train_dataset    VARCHAR,               -- the dataset the training manifest came from
        n_train          BIGINT,                -- samples the adapter was trained on
        n_full           BIGINT,                -- samples of train_dataset (for data reduction)
        train_time_s     DOUBLE,                -- fine-tune wall time
        engine           VARCHAR NOT NULL,
        judge            VARCHAR NOT NULL,
        n                BIGINT NOT NULL,       -- samples judged
        n_correct        BIGINT NOT NULL,
        n_undecided      BIGINT NOT NULL,       -- judge could not decide, or image unreadable
        accuracy         DOUBLE NOT NULL,       -- n_correct / n
        per_task         VARCHAR NOT NULL,      -- JSON {task: {"n", "correct", "accuracy"}}
        options          VARCHAR                -- JSON: limit, max_new_tokens, engine options
    );
    """,
    # 3: tags and notes on samples, append-only like decisions. The latest add/remove row of a
    # (sample, tag) says whether the tag is on; notes accumulate. Samples, not runs: a tag
    # follows the sample into every run and export (store/tags.py).
    """
    CREATE SEQUENCE IF NOT EXISTS tag_seq START 1;
    CREATE TABLE IF NOT EXISTS tags (
        seq        BIGINT PRIMARY KEY,      -- append order; the latest seq per (sample, tag) wins
        sample_id  BIGINT NOT NULL,
        tag        VARCHAR,                 -- NULL on a note row
        action     VARCHAR NOT NULL CHECK (action IN ('add', 'remove', 'note')),
        note       VARCHAR,                 -- the text of a note row
        run_id     VARCHAR,                 -- the run it was made in, when made while reviewing one
        author     VARCHAR NOT NULL,
        tagged_at  TIMESTAMP NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
