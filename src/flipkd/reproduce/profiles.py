"""Run profiles: sizes and models for each budget, as config overrides.

``tiny`` is for tests (the tests swap in in-code models); ``demo`` aims at about ten
minutes on a 2-core CPU from a warm cache; ``cpu`` is the whole ladder × 3 seeds
within about 2.5 hours on that machine per benchmark; ``full`` is paper-faithful
(Qwen2.5-0.5B, LoRA rank 256 on every linear layer, full train split) for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Profile:
    """A named budget: config overrides plus which rows and how much evaluation."""

    name: str
    description: str
    overrides: dict[str, Any]
    rows: tuple[str, ...]
    bootstrap: int = 1000
    benchmark_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


ALL_ROWS = (
    "teacher", "zero-shot", "sft", "fip-arccse", "fip-kdmcse", "fip",
    "fip-no-mcl", "fip-no-dist", "fip-no-filter", "fip-weak-teacher",
)  # fmt: skip

_CPU_STUDENT = {
    "student.model": "smollm2-135m",
    "student.lora.rank": 16,
    "student.lora.alpha": 32,
    "student.lora.layers": [-4, -3, -2, -1],
    "student.max_text_length": 40,
    "student.max_length": 128,
    "train.batch_size": 8,
    "train.lr": 5e-4,
    "train.save_every": 10,
    "train.eval_every": 0,
    "train.threads": 2,
}

PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        "tiny", "tests: a few steps on a few pairs (tests swap in tiny in-code models)",
        {
            "data.max_train_pairs": 32, "data.max_dev_pairs": 16, "data.max_test_pairs": 16,
            "teacher.finetune": False, "student.lora.rank": 4, "student.max_text_length": 16,
            "student.max_length": 96, "train.steps": 3, "train.batch_size": 4,
            "train.save_every": 0, "train.lr": 5e-3, "teacher.noise": 0.0,
        },
        ALL_ROWS, bootstrap=50,
    ),
    "demo": Profile(
        "demo", "MQP subset, smollm2-135m + minilm-l6: teacher, sft, fip; aims at ~10 min idle",
        {
            **_CPU_STUDENT,
            "data.benchmark": "mqp", "data.max_train_pairs": 400, "data.max_dev_pairs": 64,
            "data.max_test_pairs": 128, "teacher.model": "minilm-l6", "teacher.epochs": 1,
            "train.steps": 40, "train.batch_size": 16, "train.lr": 1e-3, "train.save_every": 20,
        },
        ("teacher", "zero-shot", "sft", "fip"), bootstrap=1000,
    ),
    "cpu": Profile(
        "cpu",
        "whole ladder x 3 seeds in <= 2.5 h per benchmark on 2 cores (subsets, top-4-layer LoRA)",
        {
            **_CPU_STUDENT,
            "data.max_train_pairs": 1000, "data.max_dev_pairs": 100, "data.max_test_pairs": 200,
            "teacher.epochs": 1, "teacher.noise": 0.0, "train.steps": 100,
            "train.batch_size": 16, "train.lr": 1e-3, "train.save_every": 25,
        },
        ALL_ROWS, bootstrap=1000,
        benchmark_overrides={
            "mqp": {"teacher.model": "minilm-l6"},
            "atec": {"teacher.model": "e5-small-multilingual", "student.model": "gemma3-270m",
                     "teacher.max_length": 64, "train.steps": 60},  # gemma's top layers cost more
        },
    ),
    "full": Profile(
        "full",
        "paper-faithful: qwen2.5-0.5b, LoRA r=256 on all linear layers, full train, official test",
        {
            "student.model": "qwen2.5-0.5b", "student.lora.rank": 256, "student.lora.alpha": 512,
            "student.lora.layers": None, "student.max_text_length": 64, "student.max_length": 192,
            "teacher.model": "e5-small-multilingual", "teacher.epochs": 2, "teacher.batch_size": 64,
            "train.steps": 4000, "train.batch_size": 32, "train.lr": 1e-4, "train.save_every": 200,
            "train.gradient_checkpointing": True,
        },
        ALL_ROWS, bootstrap=1000,
    ),
}  # fmt: skip

WEAK_TEACHER_NOISE = 0.12
