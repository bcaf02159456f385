"""The job modules stay light to import: `thresher --help` and `thresher runs` must not wait for them."""

import json
import subprocess
import sys


def test_job_modules_import_no_arrow_numpy_or_torch():
    code = (
        "import json, sys, store.runs, selection.jobs, selection.jobs.worker\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    loaded = set(json.loads(out))
    assert not loaded & {"pyarrow", "numpy", "torch", "duckdb", "textual", "tui"}
