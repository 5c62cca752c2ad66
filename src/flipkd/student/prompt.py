"""Prompt templates and label words, kept in a table (not in code branches).

The student answers by generating a label word right after the prompt. The match
score is the softmax over the two label-word logits at the answer position.

Multi-token rule: a label word must be one token, or the first sub-tokens of
the two words must differ; then the first sub-token stands for the word (stated
in the log). Identical first sub-tokens are an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flipkd.config.schema import template_problem
from flipkd.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptSpec:
    """A template with ``{a}`` and ``{b}`` slots and (positive, negative) label words."""

    language: str
    template: str
    label_words: tuple[str, str]


PROMPTS: dict[str, PromptSpec] = {
    "en": PromptSpec(
        "en",
        "Do these two questions ask the same thing?\nQuestion 1: {a}\nQuestion 2: {b}\n"
        "Answer with yes or no.",
        ("yes", "no"),
    ),
    "zh": PromptSpec(
        "zh",
        "判断下面两个句子的意思是否相同。\n句子1：{a}\n句子2：{b}\n请回答是或否。",
        ("是", "否"),
    ),
}

LANGUAGE_OF_BENCHMARK = {"atec": "zh", "bq": "zh", "lcqmc": "zh", "pawsx-zh": "zh"}


def resolve_prompt(
    language: str,
    template: str | None = None,
    label_words: tuple[str, str] | None = None,
    benchmark: str | None = None,
) -> PromptSpec:
    """Pick the prompt for a language ("auto" looks at the benchmark name)."""
    if language == "auto":
        language = LANGUAGE_OF_BENCHMARK.get(benchmark or "", "en")
    if language not in PROMPTS:
        raise ConfigError(f"student.prompt.language {language!r}: choose one of {list(PROMPTS)}")
    base = PROMPTS[language]
    spec = PromptSpec(language, template or base.template, tuple(label_words or base.label_words))
    problem = template_problem(spec.template)
    if problem:
        raise ConfigError(f"student.prompt.template: {problem}")
    for word in spec.label_words:
        if not word.strip():
            raise ConfigError("student.prompt.label_words: a label word is empty")
    return spec


def label_token_ids(
    tokenizer, words: tuple[str, str], leading_space: bool = False
) -> tuple[int, int]:
    """Token ids of the two label words as they start the answer.

    ``leading_space`` is set for plain (non-chat) prompts, where the answer
    follows ``Answer:`` after a space.
    """
    ids, lengths = [], []
    for word in words:
        text = f" {word}" if leading_space else word
        toks = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not toks:
            raise ConfigError(f"label word {word!r} encodes to no token")
        ids.append(toks[0])
        lengths.append(len(toks))
    if ids[0] == ids[1]:
        raise ConfigError(
            f"label words {words} share their first token (id {ids[0]}) in this tokenizer; "
            "set student.prompt.label_words to two words that differ in their first token"
        )
    for word, n in zip(words, lengths, strict=True):
        if n > 1:
            log.info("label word %r is %d tokens; its first token stands for it", word, n)
    return ids[0], ids[1]


def render(tokenizer, spec: PromptSpec, a: str, b: str, use_chat_template: bool) -> str:
    """The full prompt text up to (not including) the answer."""
    body = spec.template.format(a=a, b=b)
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": body}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return body + "\nAnswer:"
