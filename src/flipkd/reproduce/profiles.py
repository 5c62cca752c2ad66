"""Run profiles: sizes and models for each budget, as config overrides.

``tiny`` is for tests (the tests swap in in-code models); ``demo`` aims at about ten
minutes on a 2-core CPU from a warm cache; ``cpu`` is the whole ladder × 3 seeds
within about 3 hours on that machine per benchmark; ``full`` is paper-faithful
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
    # train in bf16 on a CPU-only machine whose CPU multiplies bf16 natively (AVX-512 BF16,
    # AMX): trainer/precision.py; a user's train.mixed_precision override still wins
    cpu_bf16: bool = False


ALL_ROWS = (
    "teacher", "zero-shot", "sft", "fip-arccse", "fip-kdmcse", "fip",
    "fip-no-mcl", "fip-no-dist", "fip-no-filter", "fip-weak-teacher",
)  # fmt: skip
# every row, the opt-in ones too (run with --row; not in the paper's ladder): the tiny
# profile's, so the tests run each row end to end
TEST_ROWS = (*ALL_ROWS[:3], "sft-kd", *ALL_ROWS[3:])

# Chosen on MQP dev (docs/quality.md, results/dev/mqp/): the label learns to compare only with
# depth and length — top 8 adapted layers and 150 steps (mqp-length), with the plain prompt
# (mqp-prompt: 50 tokens instead of the chat template's 77, a third faster, gen not worse), and
# the A-tap at the lowest adapted layer's q_proj (mqp-interference: rep 0.810 vs 0.758 with the
# tap at the last layer's down_proj, gen 0.712 vs 0.697) plus the top layer's q_proj, whose
# gradients run through the label's layers (mqp-term-apart: fip gen 0.786 vs 0.772 with the low
# tap alone, rep 0.793 vs 0.798, 2 seeds; ~2x the training time of a fip step). The label's and
# the representation terms' gradients are clipped apart (term-apart): one shared norm, dominated
# by the representation terms, shrinks every label step (mqp-clip-scope: gen 0.763 vs 0.706), and
# with a tap above the label's layers clipping only the tapped A apart costs the label again
# (mqp-tap-place: tap at layer 26 / 29 q_proj under tap-apart, gen 0.736 / 0.722 vs 0.763).
TOP8 = [-8, -7, -6, -5, -4, -3, -2, -1]
_CPU_STUDENT = {
    "student.model": "smollm2-135m",
    "student.lora.rank": 16,
    "student.lora.alpha": 32,
    "student.lora.layers": TOP8,
    "student.prompt.use_chat_template": False,
    "student.tap.layers": [-8, -1],
    "student.tap.modules": ["q_proj"],
    "train.clip_scope": "term-apart",
    "student.max_text_length": 40,
    "student.max_length": 128,
    "train.batch_size": 8,
    "train.lr": 5e-4,
    "train.save_every": 10,
    "train.eval_every": 0,
    "train.threads": 2,
}

_CHINESE = {
    "teacher.model": "e5-small-multilingual",
    "student.model": "qwen2.5-0.5b",
    "teacher.max_length": 64,
}

# L_rank (loss.label_rank, not the paper's: the label asked for the teacher's ranking of a
# batch's pairs, losses/label_rank.py) at weight 3, chosen on dev (docs/quality.md §19-20):
# ATEC dev, 3 seeds, fip gen +0.032 (2/3 intervals above 0), +0.011 over the plain sft, rep AUC
# -0.006 (results/dev/atec/atec-label-rank-seeds/); MQP dev, 2 seeds, gen -0.004 and rep
# -0.004, no interval above or below 0 (results/dev/mqp/mqp-label-rank/). The ladder's sft
# rows keep 0. Not in the demo profile (untried at its 100 steps).
_CPU_PROFILE_OVERRIDES = {
    **_CPU_STUDENT,
    "data.max_train_pairs": 1000, "data.max_dev_pairs": 100, "data.max_test_pairs": 200,
    "teacher.epochs": 1, "teacher.noise": 0.0, "train.steps": 150,
    "train.batch_size": 16, "train.lr": 1e-3, "train.save_every": 25,
    "loss.label_rank": 3.0,
}  # fmt: skip

# ATEC: the seeded 1,000-pair dev sample every ATEC dev sweep used (100 pairs hold ~18
# positives: on them the teacher's "keep the base unless a checkpoint beats it" chose the
# untrained e5-small, best_step 0, where the same training on 1,000 dev pairs kept step 125;
# results/dev/atec/teacher-dev-size/, docs/quality.md §21). The student trains on 4,000 pairs,
# not 1,000 (results/dev/atec/atec-pairs/, 3 seeds: sft gen +0.015, fip rep AUC +0.031).
# The teacher fine-tunes once on the whole train split (62,478 pairs, one epoch, ~25 min here
# with the speed options: word embeddings fixed, length-grouped batches) at
# configs/teacher_atec_full.yaml's settings, and that one teacher serves every seed
# (teacher.seed fixed): results/dev/atec/atec-rep-levers/ (2 seeds, 1,000 dev pairs), fip rep
# Spearman 31.1 -> 35.3 over the 4,000-pair teacher, gen +0.020, rep AUC intervals above 0.
# One teacher for every seed (teacher.seed fixed), fine-tuned at configs/teacher_atec_full.yaml's
# settings with the speed options; the Chinese sets below differ in the teacher's sample.
_SHARED_TEACHER = {
    "teacher.seed": 0,
    "teacher.lr": 5e-5,
    "teacher.freeze_embeddings": True,
    "teacher.group_by_length": True,
}
_ATEC = {
    **_CHINESE,
    **_SHARED_TEACHER,
    "data.max_dev_pairs": 1000,
    "data.max_train_pairs": 4000,
    "teacher.max_train_pairs": None,
}

# BQ: one teacher for every seed, fine-tuned on a seeded 20,000 of BQ's 100,000 train pairs
# (configs/teacher_bq_20k.yaml's training: ~13 min here with the speed options), the student on
# the profile's 1,000 pairs, and the 1,000-pair dev sample the BQ dev sweeps read. With 300
# steps (below) it is the first BQ recipe whose label leads an equally long sft in every seed:
# results/dev/bq/bq-gen-uptake/ (3 seeds, 1,000 dev pairs), fip gen 0.824 against sft's 0.806
# (+0.018 / +0.018 / +0.016, 1/3 intervals above 0), rep Spearman 53.9 (the per-seed teacher at
# 150 steps: 48.7, results/dev/bq/bq-gen-levers/); docs/quality.md §24.
_BQ = {
    **_CHINESE,
    **_SHARED_TEACHER,
    "data.max_dev_pairs": 1000,
    "teacher.max_train_pairs": 20000,
}

_CPU_BENCHMARK_OVERRIDES = {
    # MQP's dev and test splits are small: read all of them (206 / 418 pairs).
    "mqp": {"teacher.model": "minilm-l6", "data.max_dev_pairs": None, "data.max_test_pairs": None},
    # The Chinese sets: Qwen2.5-0.5B with the MQP-chosen recipe, chosen on ATEC dev
    # (results/dev/atec/atec-student/: gen AUC 0.727 vs Gemma-3-270M's 0.556 for sft).
    # BQ at 300 steps of 16 (4.8 epochs of its 1,000 pairs), every trained row: at 150 the
    # label took up little of the 20,000-pair teacher's ranking (fip gen +0.008 over sft,
    # 1/3 seeds; results/dev/bq/bq-gen-levers/), at 300 +0.017 (3/3 ahead).
    "bq": {**_BQ, "train.steps": 300},
    # ATEC at 300 steps of 16, not 150 (1.2 epochs of the 4,000 pairs): with the full-data
    # teacher the distillation term was still falling when the cosine schedule reached 0 at
    # 150; at 300, fip dev rep Spearman 35.3 -> 39.4 (0.83 of the teacher), gen +0.007,
    # rep AUC +0.031 (results/dev/atec/atec-rep-levers/, docs/quality.md §23). Every trained
    # row gets it (sft included), so a row trains ~25-30 min and the whole ladder x 3 seeds
    # is ~11 h here (estimated): run it by rows (--row) or seeds (--seed).
    "atec": {**_ATEC, "train.steps": 300},
}
# the gpu profile: ATEC's and BQ's data and teacher, its own (dev-chosen on MQP) capacity and steps
_GPU_BENCHMARK_OVERRIDES = {**_CPU_BENCHMARK_OVERRIDES, "atec": _ATEC, "bq": _BQ}

PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        "tiny", "tests: a few steps on a few pairs (tests swap in tiny in-code models)",
        {
            "data.max_train_pairs": 32, "data.max_dev_pairs": 16, "data.max_test_pairs": 16,
            "teacher.finetune": False, "student.lora.rank": 4, "student.max_text_length": 16,
            "student.max_length": 96, "train.steps": 3, "train.batch_size": 4,
            "train.save_every": 0, "train.lr": 5e-3, "teacher.noise": 0.0,
        },
        TEST_ROWS, bootstrap=50,
    ),
    "demo": Profile(
        "demo", "MQP subset, smollm2-135m + minilm-l6: teacher, sft, fip; aims at ~10 min idle",
        {
            **_CPU_STUDENT,
            "data.benchmark": "mqp", "data.max_train_pairs": 600, "data.max_dev_pairs": None,
            "data.max_test_pairs": None, "teacher.model": "minilm-l6", "teacher.epochs": 1,
            # the teacher's batches grouped by token length, its word embeddings fixed:
            # 34 s of fine-tuning instead of 50, dev ROC-AUC 0.929 vs 0.930
            # (results/dev/mqp/demo-teacher/, 2 seeds)
            "teacher.group_by_length": True, "teacher.freeze_embeddings": True,
            "train.steps": 100, "train.batch_size": 16, "train.lr": 1e-3, "train.save_every": 25,
        },
        # no zero-shot row: with the two-tap default its evaluation (93 s of 624 pairs in both
        # modes) took the demo past 10 minutes (10:33 measured); the cpu ladder has that row
        ("teacher", "sft", "fip"), bootstrap=1000,
        # bf16 training and frozen prefix where the CPU has bf16 instructions: dev metrics
        # level with float32 in both rows (results/dev/mqp/demo-precision/, 2 seeds)
        cpu_bf16=True,
    ),
    "cpu": Profile(
        "cpu",
        "subsets, top-8-layer LoRA for 2 CPU cores: MQP's whole ladder x 3 seeds in <= 3 h; "
        "ATEC and BQ train 300 steps from one shared teacher (hours: run by --row / --seed)",
        _CPU_PROFILE_OVERRIDES, ALL_ROWS, bootstrap=1000,
        benchmark_overrides=_CPU_BENCHMARK_OVERRIDES,
    ),
    # The capacity chosen on MQP dev on a GPU (results/dev/mqp/mqp-capacity/, 3 seeds): LoRA
    # r=64 on every layer for 450 steps lifts fip's dev gen ROC-AUC to 0.888 and rep to 0.856
    # (cpu recipe: 0.780 / 0.800); the data and the rest of the recipe are the cpu profile's.
    # On 2 CPU cores a run would take ~1.5-2 h (every-layer steps), so this is a GPU profile.
    # The Chinese sets get it untried on their dev (their Qwen student, as in cpu).
    "gpu": Profile(
        "gpu",
        "cpu profile's data and recipe at the dev-chosen capacity: LoRA r=64 on every layer, "
        "450 steps (for a GPU)",
        {
            **{k: v for k, v in _CPU_PROFILE_OVERRIDES.items() if k != "train.threads"},
            "student.lora.layers": None, "student.lora.rank": 64, "student.lora.alpha": 128,
            "train.steps": 450,
        },
        ALL_ROWS, bootstrap=1000, benchmark_overrides=_GPU_BENCHMARK_OVERRIDES,
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
