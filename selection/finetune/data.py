"""The collator of the fine-tune: it renders manifest samples (read by `store.export.read`) with the
model's chat template and masks every token except the assistant's answers."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from store.errors import ThresherError
from store.export.read import ManifestSample
from store.ingest.formats import IMAGE_TOKEN

IGNORE_INDEX = -100
Example = ManifestSample  # what the fine-tune calls a manifest's sample


def chat_messages(example: Example) -> list[dict[str, Any]]:
    """The example as a processor chat: `<image>` tokens become image parts, in place.

    Images with no `<image>` token go before the first user turn's text, as LLaVA does.
    """
    explicit = any(IMAGE_TOKEN in c for _, c in example.turns)
    messages: list[dict[str, Any]] = []
    first_user = True
    for role, content in example.turns:
        parts: list[dict[str, Any]] = []
        if role == "user" and first_user and not explicit:
            parts += [{"type": "image"} for _ in example.images]
        if role == "user":
            first_user = False
        pieces = content.split(IMAGE_TOKEN)
        for k, piece in enumerate(pieces):
            if k > 0:
                parts.append({"type": "image"})
            # Whitespace around an <image> token is layout, not content (CONTRACTS: stripped).
            piece = piece.strip() if len(pieces) > 1 else piece
            if piece:
                parts.append({"type": "text", "text": piece})
        messages.append({"role": role, "content": parts})
    return messages


def _render(processor: Any, messages: list[dict[str, Any]], generation_prompt: bool = False) -> str:
    return processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def render_with_segments(processor: Any, example: Example) -> tuple[str, list[str]]:
    """The rendered chat and the text of each assistant turn as the template writes it.

    An assistant segment is what rendering turn i adds after the generation prompt: the answer
    plus the template's end-of-turn marker (so the model learns to stop). Templates that rewrite
    earlier turns when later ones arrive cannot be masked this way and get a clear error.
    """
    messages = chat_messages(example)
    full = _render(processor, messages)
    segments = []
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        if i == 0:
            raise ThresherError(
                f"sample {example.id}: starts with an assistant turn; nothing asks it"
            )
        prefix = _render(processor, messages[:i], generation_prompt=True)
        upto = _render(processor, messages[: i + 1])
        if not (upto.startswith(prefix) and full.startswith(upto)):
            raise ThresherError(
                f"sample {example.id}: the model's chat template is not prefix-stable (turn {i} "
                "renders differently once later turns exist), so assistant tokens cannot be "
                "located; train with a template that is, or single-turn samples"
            )
        # Trailing newlines after the end-of-turn marker are layout between turns.
        segments.append(upto[len(prefix) :].rstrip("\n"))
    return full, segments


def _find(haystack: list[int], needle: list[int], start: int) -> int:
    n, m = len(haystack), len(needle)
    first = needle[0]
    for i in range(start, n - m + 1):
        if haystack[i] == first and haystack[i : i + m] == needle:
            return i
    return -1


def assistant_labels(
    input_ids: list[int],
    segments: Sequence[list[int]],
    sample_id: str,
    no_loss: Collection[int] = (),
) -> list[int]:
    """Labels equal to `input_ids` on the assistant segments, IGNORE_INDEX everywhere else.

    Segments are located in order, each after the previous one. A tokenizer may merge a
    segment's first token with the text before it; then the rest of the segment is matched.
    Segments listed in `no_loss` (ms-swift's `"loss": false`) are located but not learned.
    """
    labels = [IGNORE_INDEX] * len(input_ids)
    cursor = 0
    for k, seg in enumerate(segments):
        for trimmed in (seg, seg[1:]):
            pos = _find(input_ids, trimmed, cursor) if trimmed else -1
            if pos >= 0:
                if k not in no_loss:
                    labels[pos : pos + len(trimmed)] = trimmed
                cursor = pos + len(trimmed)
                break
        else:
            raise ThresherError(
                f"sample {sample_id}: assistant turn {k} could not be located in the tokenized "
                "chat (the template and tokenizer disagree); report the model name"
            )
    return labels


def _load_image(path: str, max_pixels: int | None) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as im:
            img = im.convert("RGB")
    except OSError as exc:
        raise ThresherError(
            f"image {path}: cannot be read ({exc}); fix or drop the sample"
        ) from exc
    if max_pixels and img.width * img.height > max_pixels:
        scale = (max_pixels / (img.width * img.height)) ** 0.5
        img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))))
    return img


class Collator:
    """Turns a list of examples into one padded batch with assistant-only labels.

    The processor sees the whole micro-batch at once so each model family batches its own
    image tensors (Qwen2-VL's flat patches, Idefics3's padded tiles). Samples longer than
    `max_length` are dropped from the batch (not cut, which would break image tokens) and
    reported in `skipped`.
    """

    def __init__(self, processor: Any, max_length: int, image_max_pixels: int | None = None):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.max_length = max_length
        self.image_max_pixels = image_max_pixels

    def encode(self, examples: Sequence[Example]) -> tuple[dict[str, Any], list[list[list[int]]]]:
        texts, seg_ids = [], []
        for ex in examples:
            text, segments = render_with_segments(self.processor, ex)
            texts.append(text)
            seg_ids.append(
                [self.tokenizer(s, add_special_tokens=False)["input_ids"] for s in segments]
            )
        images = [[_load_image(p, self.image_max_pixels) for p in ex.images] for ex in examples]
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if any(images):
            kwargs["images"] = images
        # The chat template writes BOS and special tokens itself; the eval engine encodes the same
        # way, so training and evaluation see identical prompts.
        batch = dict(self.processor(**kwargs, add_special_tokens=False))
        return batch, seg_ids

    def __call__(self, examples: Sequence[Example]) -> tuple[dict[str, Any] | None, list[str]]:
        """(batch with `labels`, ids of skipped samples); batch is None when all were skipped."""
        import torch

        batch, seg_ids = self.encode(examples)
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        too_long = [i for i, n in enumerate(lengths) if n > self.max_length]
        skipped = [examples[i].id for i in too_long]
        if too_long:
            keep = [ex for i, ex in enumerate(examples) if i not in too_long]
            if not keep:
                return None, skipped
            batch, seg_ids = self.encode(keep)
            examples = keep
        labels = []
        mask = batch["attention_mask"]
        for row, (ex, segs) in enumerate(zip(examples, seg_ids, strict=True)):
            ids = batch["input_ids"][row].tolist()
            lab = assistant_labels(ids, segs, ex.id, ex.no_loss)
            labels.append(
                [x if m else IGNORE_INDEX for x, m in zip(lab, mask[row].tolist(), strict=True)]
            )
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return batch, skipped
