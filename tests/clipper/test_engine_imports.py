"""Engines, judges and the demo-model module load no heavy library until they are used."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "vllm", "peft", "httpx", "PIL")


def test_importing_engines_and_judges_is_light():
    code = (
        "import selection.engines, selection.judges, selection.judges.rules, "
        "selection.judges.llm, selection.engines.openai_engine, selection.engines.vllm_engine, "
        "selection.engines.transformers_engine, selection.demo.model\n"
        "import sys; print('\\n'.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = {m.split(".")[0] for m in out.stdout.split()}
    assert not loaded & set(HEAVY)
