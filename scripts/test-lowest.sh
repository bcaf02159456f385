#!/usr/bin/env bash
# `make test-lowest`: install the LOWEST versions pyproject.toml allows for each direct dependency
# (uv's lowest-direct resolution) into a separate venv and run a smoke subset of the tests there.
#
# torch/torchvision are not re-resolved: the lowest torch is a multi-GB download, so the venv
# borrows the dev venv's torch pair (and its CUDA wheels) through a .pth file placed after its own
# site-packages. Everything else, pyproject.toml's direct dependencies at their lowest, is its own;
# optional packages (faiss, Ray, vLLM) are absent, so their tests skip.
set -euo pipefail
DEV=${DEV:-.venv}
LOW=${LOW:-.venv-lowest}
PY="$DEV/bin/python"
"$PY" -m uv --version >/dev/null 2>&1 || "$PY" -m pip install -q "uv>=0.5"
UV=("$PY" -m uv)
pyver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
torch_pin=$("$PY" -c 'import torch, torchvision as tv
for n, m in (("torch", torch), ("torchvision", tv)):
    print(n + "==" + m.__version__.split("+")[0])')
rm -rf "$LOW"
"${UV[@]}" venv -q --python "$PY" "$LOW"
mkdir -p "$LOW/req"
printf '%s\n' "$torch_pin" >"$LOW/req/constraints.txt"
"${UV[@]}" pip compile -q pyproject.toml --resolution lowest-direct --python-version "$pyver" \
    --constraint "$LOW/req/constraints.txt" -o "$LOW/req/lowest.txt"
# Drop torch and what only torch needs (CUDA libraries, triton): borrowed from $DEV below.
grep -v -E '^(torch|torchvision|triton|nvidia-|cuda-)' "$LOW/req/lowest.txt" >"$LOW/req/install.txt"
"${UV[@]}" pip install -q --python "$LOW/bin/python" --no-deps -r "$LOW/req/install.txt"
"${UV[@]}" pip install -q --python "$LOW/bin/python" --no-deps -e .
"${UV[@]}" pip install -q --python "$LOW/bin/python" pytest pytest-timeout
# Borrow only torch, torchvision and their CUDA/triton wheels from $DEV (symlinks in one folder
# on sys.path after the venv's own site-packages), so nothing else of $DEV leaks in.
dev_site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
low_site=$("$LOW/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$LOW/borrowed"
for entry in "$dev_site"/torch "$dev_site"/torch-* "$dev_site"/torchvision* "$dev_site"/triton* \
    "$dev_site"/nvidia* "$dev_site"/cuda* "$dev_site"/functorch "$dev_site"/torchgen; do
    [ -e "$entry" ] && ln -sfn "$entry" "$LOW/borrowed/"
done
echo "$(cd "$LOW/borrowed" && pwd)" >"$low_site/zz-borrowed-torch.pth"
echo "lowest direct versions:"
"$LOW/bin/python" - <<'PY'
from importlib.metadata import version
names = ["duckdb", "transformers", "peft", "accelerate", "pyarrow", "numpy", "textual", "rich",
         "click", "httpx", "open_clip_torch", "safetensors", "pillow", "torch"]
print("  " + ", ".join(f"{n} {version(n)}" for n in names))
PY
"$LOW/bin/python" -m pytest -q -p no:cacheprovider -x "$@" \
    tests/store/test_export.py tests/store/test_ingest.py tests/ofa/test_neighbours.py \
    tests/finetune/test_data.py tests/finetune/test_train.py
