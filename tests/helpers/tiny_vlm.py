"""Tiny random vision-language models built offline from configs, for tests that run real engines.

`build_tiny_vlm(arch, out_dir)` writes a complete model folder (config, random weights, a
byte-level BPE tokenizer trained on the fly, image processor, processor, chat template) with
`save_pretrained`, so tests load it through the same `from_pretrained` path a real model takes.
`tiny_vlm(arch)` caches one build per arch per test session.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ARCHS = ("qwen2_vl", "idefics3")

# A little English so the trained BPE has real merges; any text works, the weights are random.
_CORPUS = [
    "What is shown in the image? Answer with a single word.",
    "Is there a red square in the picture? yes no",
    "How many circles are there? zero one two three four five six seven eight nine ten",
    "Which option is correct? A B C D (A) (B) (C) (D) Options: red green blue yellow",
    "The answer is the cat, the dog, a tree, an apple, the sky, 0 1 2 3 4 5 6 7 8 9 10 42 3.14",
    "User: Assistant: system question answer colour color shape square circle triangle",
]

QWEN2_VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# SmolVLM / Idefics3 style: "User:<image>question<end_of_utterance>\nAssistant: answer".
IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}: {{ message['content'] }}"
    "{% else %}{% if message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}"
    "{% elif c['type'] == 'image' %}<image>{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)

_QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
_IDEFICS_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    *[f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)],
]


def train_tokenizer(specials: list[str], *, eos: str, pad: str, vocab_size: int = 400):
    """A byte-level BPE tokenizer trained on a few sentences, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=eos,
        pad_token=pad,
        additional_special_tokens=[s for s in specials if s not in (eos, pad)],
    )


def _vocab(tokenizer) -> int:
    # Round up so the embedding has a little slack for tokens added later by processors.
    return ((len(tokenizer) + 63) // 64) * 64


def _build_qwen2_vl(out: Path) -> None:
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = train_tokenizer(_QWEN_SPECIALS, eos="<|im_end|>", pad="<|endoftext|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _QWEN_SPECIALS}
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": _vocab(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            # head_dim 8 -> 4 rotary pairs split over (t, h, w)
            "rope_parameters": {"rope_type": "default", "mrope_section": [2, 1, 1]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 1,
            "embed_dim": 16,
            "hidden_size": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    config.name_or_path = "tiny-random-qwen2-vl"
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    # 56x56 images -> 4x4 patches of 14 -> 4 image tokens after the 2x2 merge.
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": 56 * 56, "longest_edge": 56 * 56}
    )
    processor = Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN2_VL_TEMPLATE,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _build_idefics3(out: Path) -> None:
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    tokenizer = train_tokenizer(_IDEFICS_SPECIALS, eos="<end_of_utterance>", pad="<|endoftext|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _IDEFICS_SPECIALS}
    image_size, patch, scale = 32, 8, 2  # (32/8)^2 = 16 patches -> 4 tokens after pixel shuffle
    config = Idefics3Config(
        text_config={
            "model_type": "llama",
            "vocab_size": _vocab(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            "bos_token_id": ids["<|im_start|>"],
            "eos_token_id": ids["<end_of_utterance>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": patch,
        },
        scale_factor=scale,
        image_token_id=ids["<image>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    config.name_or_path = "tiny-random-idefics3"
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<end_of_utterance>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    image_processor = Idefics3ImageProcessor(
        do_image_splitting=False,
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=(image_size // patch) ** 2 // scale**2,
        chat_template=IDEFICS3_TEMPLATE,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)


_BUILDERS = {"qwen2_vl": _build_qwen2_vl, "idefics3": _build_idefics3, "smolvlm": _build_idefics3}


def build_tiny_vlm(arch: str, out_dir: str | os.PathLike) -> Path:
    """Build a tiny random VLM of `arch` into `out_dir` (reused if already complete)."""
    if arch not in _BUILDERS:
        raise ValueError(f"unknown tiny VLM arch {arch!r}; choose one of {sorted(_BUILDERS)}")
    out = Path(out_dir)
    marker = out / ".complete"
    if marker.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    _BUILDERS[arch](out)
    marker.write_text(arch)
    return out


_SESSION_DIR: Path | None = None


def tiny_vlm(arch: str) -> Path:
    """The session-wide build of `arch` (built once per test process, in a temp dir)."""
    global _SESSION_DIR
    if _SESSION_DIR is None:
        _SESSION_DIR = Path(tempfile.mkdtemp(prefix="thresher-tiny-vlm-"))
    return build_tiny_vlm(arch, _SESSION_DIR / arch)


def make_images(folder: str | os.PathLike, n: int = 2, size: int = 40) -> list[str]:
    """n small solid-colour PNGs with a square in a corner; returns their paths."""
    from PIL import Image, ImageDraw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    paths = []
    for i in range(n):
        img = Image.new("RGB", (size, size + 8 * (i % 2)), colours[i % len(colours)])
        ImageDraw.Draw(img).rectangle([2, 2, size // 3, size // 3], fill="white")
        path = folder / f"img{i}.png"
        img.save(path)
        paths.append(str(path))
    return paths


def demo_model_dir() -> Path:
    """The real demo model (SmolLM2 weights, ~25 s to build), cached across test sessions.

    The build is deterministic and atomic, so reusing it between sessions is safe; the folder
    name carries DEMO_VERSION so a changed build is rebuilt. Override with
    THRESHER_TEST_CACHE (default: <tmp>/thresher-test-cache).
    """
    from selection.models.demo_model import DEMO_NAME, DEMO_VERSION, build_demo_model

    root = Path(
        os.environ.get("THRESHER_TEST_CACHE") or Path(tempfile.gettempdir()) / "thresher-test-cache"
    )
    return build_demo_model(root / f"{DEMO_NAME}-v{DEMO_VERSION}")
