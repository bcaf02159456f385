import multiprocessing as mp
import time
from contextlib import contextmanager

import duckdb
import pytest

from store.catalog import Catalog
from store.errors import CatalogBusy
from store.schema import SCHEMA_VERSION


def test_open_creates_schema_and_is_idempotent(catalog):
    with catalog.connect() as con:
        assert catalog.schema_version(con) == SCHEMA_VERSION
        tables = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    assert {"datasets", "samples", "runs", "decisions", "exports", "meta"} <= tables
    Catalog.open(catalog.workspace).migrate()  # a second open applies nothing and does not fail


def test_transaction_rolls_back_on_error(catalog):
    with pytest.raises(RuntimeError), catalog.transaction() as con:
        con.execute("INSERT INTO meta VALUES ('probe', '1')")
        raise RuntimeError("boom")
    with catalog.connect() as con:
        assert con.execute("SELECT count(*) FROM meta WHERE key = 'probe'").fetchone()[0] == 0


def _hold(path, seconds, ready):
    con = duckdb.connect(path)
    ready.set()
    time.sleep(seconds)
    con.close()


@contextmanager
def _held_by_another_process(catalog, seconds):
    """Another process holds the catalog file open for `seconds` (from when this enters)."""
    ready = mp.Event()
    p = mp.Process(target=_hold, args=(str(catalog.path), seconds, ready))
    p.start()
    ready.wait(10)
    try:
        yield
    finally:
        p.join()


def test_second_process_waits_for_the_lock_then_succeeds(catalog):
    with _held_by_another_process(catalog, 1.0):
        t0 = time.monotonic()
        with catalog.connect() as con:
            assert con.execute("SELECT 1").fetchone() == (1,)
        assert time.monotonic() - t0 > 0.3


def test_busy_timeout_names_the_holder(catalog):
    impatient = Catalog(catalog.workspace, busy_timeout=0.3)
    with (
        _held_by_another_process(catalog, 3.0),
        pytest.raises(CatalogBusy, match="held by process"),
        impatient.connect(),
    ):
        pass
