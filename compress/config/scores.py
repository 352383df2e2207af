"""task causal-lm: the scores LLM papers report, as lm-evaluation-harness defines them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from compress.config.base import StrictModel

ZeroShotSet = Literal["hellaswag", "piqa", "arc_easy", "lambada"]


class ScoresConfig(StrictModel):
    """Zero-shot scores of every variant of a causal LM (compress/tasks/causal_lm/score.py): WikiText-2 perplexity
    and bits per byte, LAMBADA final-word accuracy, HellaSwag (length-normalised), PIQA and ARC-Easy multiple
    choice by log-likelihood, each with a 95% interval and its paired difference against the teacher."""

    enabled: bool = Field(False, description="Score every variant (the teacher, student-init, student-ce, the "
                          "distilled student and its ONNX and quantized variants) in the score stage.")
    folder: str = Field("../shared/data/llm/eval", description="Folder of the evaluation files: hellaswag_val.jsonl, "
                        "piqa.jsonl, arc_easy.jsonl, lambada_openai.jsonl and the WikiText-2 text "
                        "(../shared/data/llm/README.md gives their sources and formats).")
    sets: dict[ZeroShotSet, int | None] = Field(
        default_factory=lambda: {"hellaswag": 100, "piqa": 100, "arc_easy": 100, "lambada": 100},
        description="Items scored per set: a seeded subset (the run's seed; the same items for every variant, so "
        "differences are paired), null = every item (a GPU). Sets not listed are not scored.")
    wikitext: str | None = Field("wikitext2_test.raw", description="The WikiText-2 test text in scores.folder "
                                 "(perplexity and bits per byte); null = not scored.")
    wikitext_tokens: int | None = Field(8192, gt=0, description="Tokens of WikiText-2 scored, from its start, in "
                                        "windows of scores.window tokens (null = all of it).")
    window: int = Field(512, gt=1, le=8192, description="Tokens per WikiText-2 window; each starts with the "
                        "end-of-text token, so every token of the text is predicted (lm-evaluation-harness's rolling "
                        "windows without overlap).")
    max_length: int = Field(2048, gt=1, description="Context + continuation tokens of a zero-shot item; longer "
                            "ones are cut from the left as the harness cuts them.")
    batch_size: int = Field(8, gt=0, description="Rows per forward pass where contexts are not shared.")
