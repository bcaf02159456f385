"""ClipperConfig: every parameter of a CLIPPER run, saved as run.json["params"] and read back on resume."""

from __future__ import annotations

from dataclasses import dataclass

from selection.answering import EngineSettings
from selection.config import param
from store.errors import ThresherError

ASSIGNMENTS = ("random", "balanced")
TAUS = (1, 2)  # the paper evaluates tau = 1 and tau = 2; both are always computed
# LLaVA's evaluation prompts ask for a short answer; a chat VLM asked nothing answers in sentences.
SHORT_ANSWER = "Answer the question using a single word or phrase."
DEFAULT_PROMPT = "{question}\n" + SHORT_ANSWER


@dataclass
class ClipperConfig(EngineSettings):
    """CLIPPER (papers/clipper.txt, III-B). Defaults follow the paper where its text kept the value."""

    m: int = param(
        10,
        "W queries per demonstration. The paper's value was lost in our copy of the text "
        "(IV-A); 10 keeps probing at 10 x |P| requests and leaves a W sample unprobed under "
        "random assignment with chance about exp(-10 |P| / |W|).",
    )
    tau: int = param(1, "Default selection P{tau}+W (both tau=1 and tau=2 are always computed).")
    zero_shot_prompt: str = param(
        DEFAULT_PROMPT,
        "Template of the zero-shot user turn; {question} is the sample's first question. The "
        "default appends LLaVA's short-answer instruction (not repeated when the question "
        "already carries it). Recorded in run.json.",
        metavar="TEMPLATE",
    )
    one_shot_prompt: str = param(
        DEFAULT_PROMPT,
        "Template of both user turns of a one-shot probe (the demonstration's and the query's).",
        metavar="TEMPLATE",
    )
    max_empty_fraction: float = param(
        0.5,
        "Fail the zeroshot / probe stage when more than this fraction of replies is empty (a "
        "server answering content: null); 1 never fails. Empty replies are always counted.",
    )
    assignment: str = param(
        "random",
        "random (the paper: m queries uniformly per demonstration) or balanced (every W sample "
        "is probed about equally often; none is left unprobed when |P| * m >= |W|).",
        choices=ASSIGNMENTS,
    )
    max_new_tokens: int = param(32, "Greedy decoding budget for zero-shot and probe answers.")
    batch_size: int = param(
        8,
        "transformers: requests per forward batch (openai and vllm get a whole shard per call "
        "and apply their own concurrency).",
    )
    shard_size: int = param(256, "Samples per zero-shot / perplexity shard (the unit of resume).")
    demos_per_shard: int = param(
        16, "Demonstrations per probe shard (each runs its m probes together for the prefix cache)."
    )
    perplexity: bool = param(
        True, "Compute ground-truth answer perplexity (Fig. 4 summaries and the mid-ppl baseline)."
    )
    mid_ppl_fraction: float = param(
        0.5,
        "Fraction of the samples the middle-perplexity baseline keeps, like Random in the "
        "paper's Table I (50 % on VRSBench); ignored when --mid-ppl-match is set.",
    )
    mid_ppl_match: str = param(
        "", "Option: size the middle-perplexity baseline like this selection (e.g. P1+W) instead."
    )
    unprobed_in_wu: bool = param(
        True,
        "The paper's W_u = W minus W_c: W samples no demonstration probed are in W_u (counted "
        "apart as unprobed in summary.json). False is a deviation: they stay out of W_u.",
    )
    wc_from_ptau: bool = param(
        False,
        "Deviation, off by default: only demonstrations from P_tau fix a W sample, so W_c shrinks "
        "as tau grows. Table I of the paper has the same |W_c| at tau = 1 and 2.",
    )
    hist_bins: int = param(30, "Histogram bins over log-perplexity in summary.json.")
    limit: int | None = param(
        None,
        "Use a seeded subset of N samples of the dataset (demos, smoke tests); empty = all.",
        metavar="N",
    )

    def validate(self) -> ClipperConfig:
        def bad(what: str) -> ThresherError:
            return ThresherError(f"clipper: {what}")

        self.validate_engine("clipper")
        if self.tau not in TAUS:
            raise bad(f"--tau {self.tau} is not one of {TAUS}")
        for name in ("m", "max_new_tokens", "batch_size", "shard_size", "demos_per_shard"):
            if int(getattr(self, name)) < 1:
                raise bad(f"{name} must be at least 1 (got {getattr(self, name)})")
        if self.limit is not None and self.limit < 1:
            raise bad(f"--limit must be at least 1 (got {self.limit})")
        if self.mid_ppl_match and self.mid_ppl_match not in selection_names():
            raise bad(f"mid_ppl_match {self.mid_ppl_match!r} is not one of {selection_names()}")
        if not 0.0 < float(self.mid_ppl_fraction) <= 1.0:
            raise bad(f"--mid-ppl-fraction must be in (0, 1] (got {self.mid_ppl_fraction})")
        if not 0.0 <= float(self.max_empty_fraction) <= 1.0:
            raise bad(f"--max-empty-fraction must be in [0, 1] (got {self.max_empty_fraction})")
        for name in ("zero_shot_prompt", "one_shot_prompt"):
            if "{question}" not in getattr(self, name):
                raise bad(f"{name} must contain {{question}} (got {getattr(self, name)!r})")
        return self

    @property
    def default_selection(self) -> str:
        return f"P{self.tau}+W"

    @property
    def mid_ppl_reference(self) -> str:
        """What sizes the mid-ppl baseline: a selection's name, or "fraction 0.5"."""
        return self.mid_ppl_match or f"fraction {self.mid_ppl_fraction:g}"


def selection_names() -> list[str]:
    """The coreset selections of a CLIPPER run, in the order run.json lists them."""
    return [f"P{t}+{w}" for t in TAUS for w in ("W", "Wc", "Wu")]


def render_prompt(template: str, question: str) -> str:
    """The user turn for `question`; an instruction the question already carries is not repeated
    (LLaVA-style data often ends its questions with the short-answer instruction itself)."""
    head, _, tail = template.partition("{question}")
    if head.strip() and head.strip().lower() in question.lower():
        head = ""
    if tail.strip() and tail.strip().lower() in question.lower():
        tail = ""
    return f"{head}{question}{tail}"
