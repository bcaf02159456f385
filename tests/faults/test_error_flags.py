"""Every `--flag` an error message names exists on the command line.

Error texts advised `--busy-timeout` and `--concurrency`, which no command has. This scans
the string literals inside every `raise ...(...)` in store/, selection/ and tui/ and checks
each `--flag` in them against the options of all `thresher` commands (walked from the click
group), so new advice cannot name a flag that does not exist. Flags inside a quoted command
of another program (`vllm serve ... --enable-lora`) are that program's and are skipped.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click

from tui.cli import cli

ROOT = Path(__file__).resolve().parents[2]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
# A quoted command of another program (`vllm serve ... --enable-lora`, `pip install ...`):
# its flags are that program's, not ours.
FOREIGN_COMMAND = re.compile(r"`(?!thresher\b)[a-z][^`]*`")


def _cli_flags(group: click.Command) -> set[str]:
    flags: set[str] = set()
    stack = [group]
    while stack:
        cmd = stack.pop()
        for param in cmd.params:
            flags.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
        if isinstance(cmd, click.Group):
            stack.extend(cmd.commands.values())
    return flags


def _raised_strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            for sub in ast.walk(node.exc):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    out.append((sub.lineno, sub.value))
    return out


def test_flags_named_in_error_messages_exist():
    known = _cli_flags(cli) | {"--help", "--version"}
    assert {"--ids-file", "--engine-opt", "--debug", "--repair"} <= known  # the walk sees them
    missing = []
    n_flags = 0
    for folder in ("store", "selection", "tui"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, text in _raised_strings(path):
                for flag in FLAG.findall(FOREIGN_COMMAND.sub("", text)):
                    n_flags += 1
                    if flag not in known:
                        missing.append(f"{path.relative_to(ROOT)}:{line}: {flag}")
    assert n_flags > 20  # the scan reads real messages
    assert missing == [], "error messages name flags no command has:\n" + "\n".join(missing)
