"""Judges decide whether a model response matches the reference; `load_judge(kind, **opts)`."""

from __future__ import annotations

from selection.judges.base import Judge, JudgeItem, Verdict

JUDGE_KINDS = ("auto", "rule", "llm")


def load_judge(kind: str, **opts) -> Judge:
    """auto: rules first, undecided replies to an LLM judge when `llm` (a dict of llm options)
    is given; rule: no options (numeric tolerance `rel_tol`, `abs_tol`);
    llm: model, base_url, cache_path, api_key_env, concurrency, timeout_s, max_retries."""
    from store.errors import ThresherError

    if kind == "auto":
        from selection.judges.auto import AutoJudge

        llm_opts = opts.pop("llm", None)
        llm = load_judge("llm", **llm_opts) if llm_opts else None
        return AutoJudge(llm, **opts)
    if kind == "rule":
        from selection.judges.rules import RuleJudge

        return RuleJudge(**opts)
    if kind == "llm":
        from selection.judges.llm import LLMJudge

        return LLMJudge(**opts)
    raise ThresherError(f"unknown judge {kind!r}; choose one of {', '.join(JUDGE_KINDS)}")


__all__ = ["JUDGE_KINDS", "Judge", "JudgeItem", "Verdict", "load_judge"]
