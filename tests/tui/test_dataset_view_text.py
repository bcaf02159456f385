"""The dataset view's text filter takes the user's text literally, % and _ included."""

from __future__ import annotations

from store.ingest import ingest
from tests.store.ingest_helpers import llava_row, write_json
from tui.data.dataset_view import DatasetView, Filters


def test_text_filter_matches_percent_underscore_and_backslash_literally(catalog, tmp_path):
    answers = ["50% off", "snake_case", r"C:\temp", "plain", "500 off"]
    rows = [llava_row(i, image=None, answer=a) for i, a in enumerate(answers)]
    ingest(catalog, write_json(tmp_path / "d.json", rows), name="d")
    view = DatasetView(catalog, "d")

    def matching(text: str) -> list[str]:
        return [line.orig_id for line in view.page(Filters(text=text), 0, 10)]

    assert matching("0%") == ["s0"]  # not "500 off": % is a character here, not a wildcard
    assert matching("e_c") == ["s1"]
    assert matching("\\t") == ["s2"]
    assert view.counts(Filters(text="%")).matching == 1


def test_the_browser_text_filter_takes_percent_literally(runs_ws):
    from tui.data.run_view import Query, RunView

    view = RunView(runs_ws, "ofa-1")
    try:
        view.set_query(Query(text="%"))
        assert view.n_rows == 0  # no question or answer of this run holds a "%"
        view.set_query(Query(text="colour"))
        assert view.n_rows > 0
    finally:
        view.close()
