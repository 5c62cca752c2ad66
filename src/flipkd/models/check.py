"""Load a model and run one forward pass: the smoke check behind ``flipkd models check``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from flipkd.errors import ModelError
from flipkd.models.registry import REGISTRY, ResolvedModel, resolve

STUDENT_PROMPT = "The capital of France is"
TEACHER_SENTENCES = ["How do I reset my password?", "I forgot my password, how can I change it?"]


@dataclass
class CheckResult:
    """What a check saw."""

    name: str
    role: str
    seconds: float
    detail: str


def _check_student(model: ResolvedModel) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model.path)
    lm = AutoModelForCausalLM.from_pretrained(model.path, dtype=torch.float32)
    ids = tok(STUDENT_PROMPT, return_tensors="pt")
    with torch.inference_mode():
        out = lm.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tok.eos_token_id)
    text = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    params = sum(p.numel() for p in lm.parameters()) / 1e6
    return f"{params:.0f}M params; '{STUDENT_PROMPT}' -> {text.strip()!r}"


def _check_teacher(model: ResolvedModel) -> str:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model.path, device="cpu")
    # an explicit prompt replaces the model's default prompt, so the prefix is added once
    emb = st.encode(TEACHER_SENTENCES, prompt=model.query_prefix, convert_to_tensor=True)
    cos = torch.nn.functional.cosine_similarity(emb[0], emb[1], dim=0).item()
    return f"dim {emb.shape[1]}; paraphrase cosine {cos:.3f}"


CHECKS: dict[str, Callable[[ResolvedModel], str]] = {
    "student": _check_student,
    "teacher": _check_teacher,
}


def check_model(name: str) -> CheckResult:
    """Resolve (converting if needed), load and run a registered model once."""
    if name not in REGISTRY and not Path(name).is_dir():
        raise ModelError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}")
    role = REGISTRY[name].role if name in REGISTRY else "student"
    start = time.perf_counter()
    model = resolve(name, role)
    detail = CHECKS[role](model)
    return CheckResult(name, role, time.perf_counter() - start, detail)
