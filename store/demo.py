"""The offline demo dataset: Pillow-drawn scenes and questions with exact answers, as LLaVA JSON.

Every sample is derived from its own `random.Random(f"{seed}:{index}")`, so the output is the
same bytes for the same (seed, n, mix) whatever the worker count, and a different seed or mix
gives a second, different dataset drawn from the same world (what OFA's transfer test needs).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DEMO_VERSION = 1  # bump when the generator changes, so an old build is not reused
SIZE = 224
GRID = 3
CELL = SIZE // GRID

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "orange": (245, 130, 20),
    "purple": (140, 60, 180),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond")
POSITIONS = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
WORDS = (
    "cat", "dog", "sun", "tree", "book", "fish", "bird", "car", "moon", "cake",
    "milk", "rain", "ship", "lamp", "door", "leaf", "rock", "frog", "kite", "bell",
    "apple", "house", "chair", "river", "cloud", "train", "grape", "piano", "tiger", "smile",
)  # fmt: skip
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")

# Task families and their default shares; `text` samples have no image.
DEFAULT_MIX: dict[str, float] = {
    "yesno": 0.25,
    "mc": 0.20,
    "count": 0.20,
    "short": 0.20,
    "multiturn": 0.12,
    "text": 0.03,
}
TASKS = (*DEFAULT_MIX, "compare")  # compare: two images per sample; off unless a mix asks for it
MC_SUFFIX = "Answer with the option's letter from the given choices directly."
Scene = dict  # {"bg": rgb, "objects": [{"shape", "colour", "cell"}], "word": str|None, "word_cell"}
QA = tuple[str, str]


# ---------------------------------------------------------------- scenes and drawing


def _scene(rng: random.Random) -> Scene:
    cells = rng.sample(range(GRID * GRID), rng.randint(2, 7))
    word_cell = cells.pop() if rng.random() < 0.5 else None
    objects = [
        {"shape": rng.choice(SHAPES), "colour": rng.choice(list(COLOURS)), "cell": c} for c in cells
    ]
    bg = tuple(rng.randint(225, 250) for _ in range(3))
    word = rng.choice(WORDS) if word_cell is not None else None
    return {"bg": bg, "objects": objects, "word": word, "word_cell": word_cell}


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled font: the same glyphs on every machine, so images are byte-identical.
    return ImageFont.load_default(size=size)


def _draw(scene: Scene, rng: random.Random) -> Image.Image:
    img = Image.new("RGB", (SIZE, SIZE), scene["bg"])
    draw = ImageDraw.Draw(img)
    for obj in scene["objects"]:
        row, col = divmod(obj["cell"], GRID)
        half = rng.randint(13, 28)
        cx = col * CELL + CELL // 2 + rng.randint(-(CELL // 2 - half - 2), CELL // 2 - half - 2)
        cy = row * CELL + CELL // 2 + rng.randint(-(CELL // 2 - half - 2), CELL // 2 - half - 2)
        fill = COLOURS[obj["colour"]]
        box = (cx - half, cy - half, cx + half, cy + half)
        if obj["shape"] == "circle":
            draw.ellipse(box, fill=fill)
        elif obj["shape"] == "square":
            draw.rectangle(box, fill=fill)
        elif obj["shape"] == "triangle":
            draw.polygon(
                [(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=fill
            )
        else:
            draw.polygon(
                [(cx, cy - half), (cx + half, cy), (cx, cy + half), (cx - half, cy)], fill=fill
            )
    if scene["word"]:
        row, col = divmod(scene["word_cell"], GRID)
        draw.text(
            (col * CELL + CELL // 2, row * CELL + CELL // 2),
            scene["word"],
            fill=(70, 70, 70),  # never a shape colour, even anti-aliased
            font=_font(18),
            anchor="mm",
        )
    return img


# ---------------------------------------------------------------- questions with exact answers


def _plural(shape: str) -> str:
    return shape + "s"


def _q_yesno(scene: Scene, rng: random.Random) -> QA:
    present = {(o["colour"], o["shape"]) for o in scene["objects"]}
    if rng.random() < 0.5 and present:
        colour, shape = rng.choice(sorted(present))
    else:
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
    if rng.random() < 0.3:
        obj = rng.choice(scene["objects"])
        pos = POSITIONS[obj["cell"]] if rng.random() < 0.5 else rng.choice(POSITIONS)
        truth = any(
            POSITIONS[o["cell"]] == pos and o["shape"] == obj["shape"] for o in scene["objects"]
        )
        q = f"Is there a {obj['shape']} at the {pos} of the image? Answer yes or no."
    else:
        truth = (colour, shape) in present
        q = f"Is there a {colour} {shape} in the image? Answer yes or no."
    return q, "Yes" if truth else "No"


def _options(rng: random.Random, right: str, pool: tuple[str, ...]) -> tuple[str, str]:
    wrong = rng.sample([p for p in pool if p != right], 3)
    opts = [right, *wrong]
    rng.shuffle(opts)
    letters = "ABCD"
    text = "\n".join(f"{letters[i]}. {o}" for i, o in enumerate(opts))
    return text, letters[opts.index(right)]


def _q_mc(scene: Scene, rng: random.Random) -> QA:
    obj = rng.choice(scene["objects"])
    pos = POSITIONS[obj["cell"]]
    kind = rng.choice(["colour", "shape", "word"] if scene["word"] else ["colour", "shape"])
    if kind == "colour":
        stem, right, pool = (
            f"What colour is the {obj['shape']} at the {pos}?",
            obj["colour"],
            tuple(COLOURS),
        )
    elif kind == "shape":
        stem, right, pool = f"What shape is at the {pos} of the image?", obj["shape"], SHAPES
    else:
        stem, right, pool = "Which word is written in the image?", scene["word"], WORDS
    options, letter = _options(rng, right, pool)
    return f"{stem}\n{options}\n{MC_SUFFIX}", letter


def _q_count(scene: Scene, rng: random.Random) -> QA:
    kind = rng.random()
    if kind < 0.45:
        shape = rng.choice(SHAPES)
        n = sum(o["shape"] == shape for o in scene["objects"])
        q = f"How many {_plural(shape)} are there in the image?"
    elif kind < 0.8:
        colour = rng.choice(sorted({o["colour"] for o in scene["objects"]}) + list(COLOURS)[:2])
        n = sum(o["colour"] == colour for o in scene["objects"])
        q = f"How many {colour} shapes are there in the image?"
    else:
        n = len(scene["objects"])
        q = "How many shapes are there in the image in total?"
    return f"{q} Answer with a number.", str(n)


def _q_short(scene: Scene, rng: random.Random) -> QA:
    obj = rng.choice(scene["objects"])
    pos = POSITIONS[obj["cell"]]
    kind = rng.choice(["colour", "shape", "word"] if scene["word"] else ["colour", "shape"])
    if kind == "colour":
        return f"What colour is the {obj['shape']} at the {pos}? Answer with one word.", obj[
            "colour"
        ]
    if kind == "shape":
        return f"What shape is at the {pos} of the image? Answer with one word.", obj["shape"]
    return "What word is written in the image? Answer with the word only.", scene["word"]


def _q_text(rng: random.Random) -> QA:
    kind = rng.random()
    if kind < 0.4:
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        return f"What is {a} plus {b}? Answer with a number.", str(a + b)
    if kind < 0.7:
        word = rng.choice(WORDS)
        return f"Spell the word '{word}' backwards.", word[::-1]
    n = rng.randint(0, 6)
    return f"Write the number {n} as an English word.", NUMBER_WORDS[n]


VISUAL = {"yesno": _q_yesno, "mc": _q_mc, "count": _q_count, "short": _q_short}


def _with_image(q: str, rng: random.Random, n_images: int = 1) -> str:
    tokens = "\n".join(["<image>"] * n_images)
    # Most sources put the token first (LLaVA); some put it last. Keep both in the demo.
    return f"{q}\n{tokens}" if rng.random() < 0.2 else f"{tokens}\n{q}"


def _turns(pairs: list[QA]) -> list[dict]:
    out: list[dict] = []
    for q, a in pairs:
        out += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    return out


# ---------------------------------------------------------------- one sample, one chunk


def _sample(seed: int, index: int, mix: tuple[tuple[str, float], ...], out_dir: Path) -> dict:
    rng = random.Random(f"{seed}:{index}")
    task = rng.choices([t for t, _ in mix], weights=[w for _, w in mix])[0]
    sid = f"demo{seed}-{index:06d}"
    if task == "text":
        q, a = _q_text(rng)
        return {"id": sid, "task": task, "conversations": _turns([(q, a)])}
    n_images = 2 if task == "compare" else 1
    scenes = [_scene(rng) for _ in range(n_images)]
    names = [f"images/{sid}.png"] if n_images == 1 else [f"images/{sid}-{k}.png" for k in (1, 2)]
    for scene, name in zip(scenes, names, strict=True):
        _draw(scene, rng).save(out_dir / name, format="PNG")
    if task == "compare":
        shape = rng.choice(SHAPES)
        c1, c2 = (sum(o["shape"] == shape for o in s["objects"]) for s in scenes)
        q = f"Which image has more {_plural(shape)}? Answer first, second or same."
        a = "first" if c1 > c2 else "second" if c2 > c1 else "same"
        pairs = [(q, a)]
    elif task == "multiturn":
        families = rng.sample(sorted(VISUAL), rng.randint(2, 3))
        pairs = [VISUAL[f](scenes[0], rng) for f in families]
    else:
        pairs = [VISUAL[task](scenes[0], rng)]
    pairs[0] = (_with_image(pairs[0][0], rng, n_images), pairs[0][1])
    image: str | list[str] = names[0] if n_images == 1 else names
    return {"id": sid, "image": image, "task": task, "conversations": _turns(pairs)}


def scene_of(
    seed: int, index: int, mix: dict[str, float] | None = None
) -> tuple[str, Scene | None]:
    """(task, first scene) of sample `index` of a build, replayed from its seed without drawing:
    the demo's own labels (what the demo CLIP learns from, and what cluster purity is scored on)."""
    norm = _normalise_mix(mix)
    rng = random.Random(f"{seed}:{index}")
    task = rng.choices([t for t, _ in norm], weights=[w for _, w in norm])[0]
    return task, (None if task == "text" else _scene(rng))


def caption(scene: Scene) -> str:
    """A plain description of a scene: its shapes by colour and place, and its word."""
    parts = [
        f"a {o['colour']} {o['shape']} at the {POSITIONS[o['cell']]}" for o in scene["objects"]
    ]
    if scene["word"]:
        parts.append(f"the word {scene['word']}")
    return ", ".join(parts)


def dominant(scene: Scene, key: str) -> str:
    """The most frequent value of `key` ("colour" or "shape") among a scene's objects (ties: first
    drawn), a one-word label of the scene for purity scores."""
    values = [o[key] for o in scene["objects"]]
    return max(values, key=values.count)


def _chunk(args: tuple[int, int, int, tuple[tuple[str, float], ...], str]) -> list[dict]:
    seed, start, stop, mix, out_dir = args
    return [_sample(seed, i, mix, Path(out_dir)) for i in range(start, stop)]


def _images_present(json_path: Path) -> bool:
    """Every image the JSON names is on disk (someone may have deleted some since)."""
    for sample in json.loads(json_path.read_text(encoding="utf-8")):
        image = sample.get("image")
        for rel in [image] if isinstance(image, str) else image or []:
            if not (json_path.parent / rel).is_file():
                return False
    return True


def _normalise_mix(mix: dict[str, float] | None) -> tuple[tuple[str, float], ...]:
    mix = dict(DEFAULT_MIX if mix is None else mix)
    unknown = set(mix) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown demo task families {sorted(unknown)}; known: {list(TASKS)}")
    if sum(mix.values()) <= 0 or any(w < 0 for w in mix.values()):
        raise ValueError(f"demo mix weights must be >= 0 and not all zero: {mix}")
    return tuple((t, float(mix[t])) for t in TASKS if mix.get(t, 0) > 0)


def build_demo(
    out_dir: str | os.PathLike[str],
    n: int = 3000,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    *,
    mix: dict[str, float] | None = None,
    workers: int | None = None,
    chunk: int = 250,
) -> Path:
    """Write `out_dir/demo.json` (LLaVA) and `out_dir/images/*.png`; return the JSON's path.

    Same (n, seed, mix) -> same bytes. An identical earlier build in `out_dir` is reused.
    `progress(done, total)` is called after each chunk of samples.
    """
    out = Path(out_dir)
    norm_mix = _normalise_mix(mix)
    params = {"version": DEMO_VERSION, "n": n, "seed": seed, "mix": [list(m) for m in norm_mix]}
    json_path, build_path = out / "demo.json", out / "build.json"
    if json_path.exists() and build_path.exists():
        try:
            same = json.loads(build_path.read_text()) == params
        except ValueError:
            same = False  # unreadable marker: rebuild
        if same and _images_present(json_path):
            if progress:
                progress(n, n)
            return json_path
    (out / "images").mkdir(parents=True, exist_ok=True)
    build_path.unlink(missing_ok=True)
    jobs = [(seed, s, min(s + chunk, n), norm_mix, str(out)) for s in range(0, n, chunk)]
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if n > 4000 else 1
    samples: list[dict] = []
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for part in pool.map(_chunk, jobs):
                samples += part
                if progress:
                    progress(len(samples), n)
    else:
        for job in jobs:
            samples += _chunk(job)
            if progress:
                progress(len(samples), n)
    tmp = json_path.with_name(f".{json_path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(samples, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, json_path)
    build_path.write_text(json.dumps(params) + "\n")
    return json_path
