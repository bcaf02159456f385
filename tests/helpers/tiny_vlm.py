"""Tiny random vision-language models built offline from configs, for tests that run real engines.

`build_tiny_vlm(arch, out_dir)` writes a complete model folder (config, random weights, a
byte-level BPE tokenizer trained on the fly, image processor, processor, chat template) with
`save_pretrained`, so tests load it through the same `from_pretrained` path a real model takes.
`tiny_vlm(arch)` caches one build per arch per test session. Archs: Qwen2-VL, Qwen2.5-VL
(windowed vision tower), Idefics3 / SmolVLM, and LLaVA (llava-hf layout: CLIP vision tower +
projector + Llama, the LLaVA-1.5 "USER: ... ASSISTANT: ...</s>" template).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ARCHS = ("qwen2_vl", "qwen2_5_vl", "idefics3", "llava")

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

LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% for c in message['content'] %}{{ c['text'] }}{% endfor %} "
    "{% elif message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {% for c in message['content'] %}{{ c['text'] }}{% endfor %}</s>"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
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
_LLAVA_SPECIALS = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]


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


def _tokenizer(specials: list[str], eos: str, pad: str):
    """The trained tokenizer and the ids of its special tokens."""
    tokenizer = train_tokenizer(specials, eos=eos, pad=pad)
    return tokenizer, {t: tokenizer.convert_tokens_to_ids(t) for t in specials}


def _vocab(tokenizer) -> int:
    # Round up so the embedding has a little slack for tokens added later by processors.
    return ((len(tokenizer) + 63) // 64) * 64


def _text_config(tokenizer, ids: dict[str, int], bos: str, eos: str, pad: str, **extra) -> dict:
    """A 2-layer, 32-wide decoder: every tiny arch's language model."""
    return {
        "vocab_size": _vocab(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "bos_token_id": ids[bos],
        "eos_token_id": ids[eos],
        "pad_token_id": ids[pad],
        **extra,
    }


def _save(model_cls, config, processor, out: Path, ids: dict[str, int], eos: str, pad: str):
    """Random weights (seed 0), generation stops at `eos`, saved with its processor."""
    import torch

    torch.manual_seed(0)
    model = model_cls(config).eval()
    model.generation_config.eos_token_id = ids[eos]
    model.generation_config.pad_token_id = ids[pad]
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _build_qwen(out: Path, version: str) -> None:
    """Qwen2-VL or Qwen2.5-VL: 56x56 images -> 4x4 patches of 14 -> 4 tokens after the 2x2 merge."""
    import transformers as tf

    tokenizer, ids = _tokenizer(_QWEN_SPECIALS, "<|im_end|>", "<|endoftext|>")
    # head_dim 8 -> 4 rotary pairs split over (t, h, w)
    rope = {"rope_type": "default", "mrope_section": [2, 1, 1]}
    text = _text_config(
        tokenizer, ids, "<|endoftext|>", "<|im_end|>", "<|endoftext|>", rope_parameters=rope
    )
    vision: dict = {"patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    if version == "2":
        names = ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration", "Qwen2VLProcessor")
        vision |= {"depth": 1, "embed_dim": 16, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2}
    else:
        names = ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor")
        vision |= {
            "depth": 2, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2,
            "out_hidden_size": 32, "window_size": 56, "fullatt_block_indexes": [1],
        }  # fmt: skip
    config_cls, model_cls, processor_cls = (getattr(tf, n) for n in names)
    config = config_cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    config.name_or_path = f"tiny-random-qwen{version}-vl"
    processor = processor_cls(
        image_processor=tf.Qwen2VLImageProcessor(
            size={"shortest_edge": 56 * 56, "longest_edge": 56 * 56}
        ),
        tokenizer=tokenizer,
        video_processor=tf.Qwen2VLVideoProcessor(),
        chat_template=QWEN2_VL_TEMPLATE,
    )
    _save(model_cls, config, processor, out, ids, "<|im_end|>", "<|endoftext|>")


def _build_idefics3(out: Path) -> None:
    import transformers as tf

    tokenizer, ids = _tokenizer(_IDEFICS_SPECIALS, "<end_of_utterance>", "<|endoftext|>")
    image_size, patch, scale = 32, 8, 2  # (32/8)^2 = 16 patches -> 4 tokens after pixel shuffle
    text = _text_config(
        tokenizer, ids, "<|im_start|>", "<end_of_utterance>", "<|endoftext|>", model_type="llama"
    )
    config = tf.Idefics3Config(
        text_config=text,
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
    image_processor = tf.Idefics3ImageProcessor(
        do_image_splitting=False,
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
    )
    processor = tf.Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=(image_size // patch) ** 2 // scale**2,
        chat_template=IDEFICS3_TEMPLATE,
    )
    _save(
        tf.Idefics3ForConditionalGeneration, config, processor, out, ids, "<end_of_utterance>",
        "<|endoftext|>",
    )  # fmt: skip


def _build_llava(out: Path) -> None:
    """llava-hf layout; 28x28 images, patch 14 -> 4 image tokens (CLIP's CLS dropped)."""
    import transformers as tf

    tokenizer, ids = _tokenizer(_LLAVA_SPECIALS, "</s>", "<pad>")
    config = tf.LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
            "projection_dim": 16,
        },
        text_config=_text_config(tokenizer, ids, "<s>", "</s>", "<pad>", model_type="llama"),
        image_token_index=ids["<image>"],
        image_seq_length=4,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    processor = tf.LlavaProcessor(
        image_processor=tf.CLIPImageProcessor(
            size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}
        ),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS, dropped by the "default" strategy
        chat_template=LLAVA_TEMPLATE,
    )
    _save(tf.LlavaForConditionalGeneration, config, processor, out, ids, "</s>", "<pad>")


_BUILDERS = {
    "qwen2_vl": lambda out: _build_qwen(out, "2"),
    "qwen2_5_vl": lambda out: _build_qwen(out, "2.5"),
    "idefics3": _build_idefics3,
    "smolvlm": _build_idefics3,
    "llava": _build_llava,
}


TINY_VERSION = 1  # bump when a builder changes, so cached builds are not reused


def build_tiny_vlm(arch: str, out_dir: str | os.PathLike) -> Path:
    """Build a tiny random VLM of `arch` into `out_dir` (reused if already complete).

    The build goes to a sibling temp folder that is renamed into place, so concurrent builders
    (pytest-xdist workers) never see half a model: the first rename wins, the others drop theirs.
    """
    if arch not in _BUILDERS:
        raise ValueError(f"unknown tiny VLM arch {arch!r}; choose one of {sorted(_BUILDERS)}")
    out = Path(out_dir)
    if (out / ".complete").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _BUILDERS[arch](tmp)
        (tmp / ".complete").write_text(arch)
        try:
            os.rename(tmp, out)
        except OSError:  # another process finished first (or a stale incomplete folder)
            if not (out / ".complete").exists():
                shutil.rmtree(out, ignore_errors=True)
                os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def cache_root() -> Path:
    """Builds shared by test processes and sessions: $THRESHER_TEST_CACHE, else
    <tmp>/thresher-test-cache. Every build there is deterministic (seeded) and atomic."""
    return Path(
        os.environ.get("THRESHER_TEST_CACHE") or Path(tempfile.gettempdir()) / "thresher-test-cache"
    )


def tiny_vlm(arch: str) -> Path:
    """The shared build of `arch`: built once, then reused by every test process and session."""
    return build_tiny_vlm(arch, cache_root() / f"tiny-{arch}-v{TINY_VERSION}")


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
    from selection.demo.model import DEMO_NAME, DEMO_VERSION, build_demo_model

    return build_demo_model(cache_root() / f"{DEMO_NAME}-v{DEMO_VERSION}")
