"""Prompt templates and label words, kept in a table (not in code branches).

The student answers by generating a label word right after the prompt. The match
score is the softmax over the two label-word logits at the answer position.

Without a chat template the prompt ends with the language's answer cue and the label
word follows it as the tokenizer would continue the text: `` yes`` after ``Answer:``,
``是`` after ``答案：`` (a full-width colon takes no space; `` 否`` with one is two
byte-level tokens in Qwen2.5 and a bare space plus ``否`` in Gemma-3, so the "no"
label would be a partial character or the space token).

Multi-token rule: a label word must be one token, or the first sub-tokens of
the two words must differ; then the first sub-token stands for the word (stated
in the log). Identical first sub-tokens are an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flipkd.config.schema import PromptConfig, template_problem
from flipkd.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptSpec:
    """A template with ``{a}`` and ``{b}`` slots and (positive, negative) label words."""

    language: str
    template: str
    label_words: tuple[str, str]
    answer_suffix: str = "\nAnswer:"  # after the body, without a chat template
    label_prefix: str = " "  # between the answer cue and the label word


PROMPTS: dict[str, PromptSpec] = {
    "en": PromptSpec(
        "en",
        "Do these two questions ask the same thing?\nQuestion 1: {a}\nQuestion 2: {b}\n"
        "Answer with yes or no.",
        ("yes", "no"),
    ),
    "zh": PromptSpec(
        "zh",
        # the instruction before the pair: a re-ranked candidate's tail is then the pair's end
        # and "\n答案：" alone (9.0 Qwen tokens instead of 15.0 with "请回答是或否。" after the
        # pair: 1.17x the re-ranking speed); dev level or better (results/dev/bq/bq-prompt/)
        "判断下面两个句子的意思是否相同，请回答是或否。\n句子1：{a}\n句子2：{b}",
        ("是", "否"),
        "\n答案：",
        "",
    ),
}

LANGUAGE_OF_BENCHMARK = {"atec": "zh", "bq": "zh", "lcqmc": "zh", "pawsx-zh": "zh"}


def resolve_prompt(prompt: PromptConfig, benchmark: str | None = None) -> PromptSpec:
    """The prompt a student config asks for ("auto" language looks at the benchmark name);
    unset fields take the language's defaults."""
    language = prompt.language
    if language == "auto":
        language = LANGUAGE_OF_BENCHMARK.get(benchmark or "", "en")
    if language not in PROMPTS:
        raise ConfigError(f"student.prompt.language {language!r}: choose one of {list(PROMPTS)}")
    base = PROMPTS[language]
    spec = PromptSpec(
        language,
        prompt.template or base.template,
        tuple(prompt.label_words or base.label_words),
        base.answer_suffix if prompt.answer_suffix is None else prompt.answer_suffix,
        base.label_prefix if prompt.label_prefix is None else prompt.label_prefix,
    )
    problem = template_problem(spec.template)
    if problem:
        raise ConfigError(f"student.prompt.template: {problem}")
    for word in spec.label_words:
        if not word.strip():
            raise ConfigError("student.prompt.label_words: a label word is empty")
    return spec


def label_token_ids(tokenizer, words: tuple[str, str], prefix: str = "") -> tuple[int, int]:
    """Token ids of the two label words as they start the answer.

    ``prefix`` is what comes between the prompt and the word: the spec's ``label_prefix``
    for plain prompts (a space after ``Answer:``), nothing after a chat template.
    """
    ids, lengths = [], []
    for word in words:
        text = prefix + word
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
    return body + spec.answer_suffix


def label_prefix(spec: PromptSpec, use_chat_template: bool) -> str:
    """What precedes the label word: nothing after a chat template's generation prompt."""
    return "" if use_chat_template else spec.label_prefix
