"""The configuration tree. Every open choice of the method is a named field here.

Defaults are documented in ``docs/assumptions.md``. Objects stop at builders:
functions below the builders take plain arguments.
"""

from __future__ import annotations

import string
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    # allow_inf_nan=False: `.inf` / `.nan` in a float field is an error, not a NaN run
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def template_problem(template: str) -> str | None:
    """What is wrong with a prompt template, or None: the slots are exactly ``{a}`` and ``{b}``.

    ``{c}``, ``{0}``, ``{}``, ``{a.x}``, ``{a!r}``, a missing slot or an unmatched brace is a
    problem (``{{`` and ``}}`` write a literal brace).
    """
    hint = "(write {{ and }} for a literal brace)"
    try:
        slots = [(f, c, s) for _, f, s, c in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        return f"{err} {hint}"
    for field, conversion, spec in slots:
        if field not in ("a", "b") or conversion or spec:
            slot = field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            return f"unknown slot {{{slot}}}; the slots are {{a}} and {{b}} {hint}"
    if {"a", "b"} - {f for f, _, _ in slots}:
        return "must contain both {a} and {b}"
    return None


IN_BATCH_CONTRASTIVE = ("infonce", "arccse", "kdmcse", "mcl")


def loss_problem(loss: LossConfig, train: TrainConfig) -> str | None:
    """What makes the loss terms untrainable with this batch, or None."""
    in_batch = loss.dist != "none" or loss.contrastive in IN_BATCH_CONTRASTIVE
    if in_batch and train.batch_size < 2:
        return (
            "train.batch_size must be at least 2 when loss.dist or an in-batch contrastive "
            "loss is on (a batch of 1 has no in-batch negatives)"
        )
    gen = loss.gen and loss.gen_weight > 0
    contrast = loss.contrastive != "none" and loss.alpha > 0
    if not (gen or contrast or (loss.dist != "none" and loss.beta > 0)):
        return (
            "every loss term is off or weighted 0 (loss.gen/gen_weight, loss.contrastive/alpha, "
            "loss.dist/beta): there is nothing to train"
        )
    return None


class DataConfig(_Strict):
    """Which pairs to use."""

    benchmark: str = "mqp"
    text_a: str | None = None
    text_b: str | None = None
    label: str | None = None
    max_train_pairs: int | None = Field(default=None, ge=1)
    max_dev_pairs: int | None = Field(default=None, ge=1)
    max_test_pairs: int | None = Field(default=None, ge=1)
    seed: int = 0


class TeacherConfig(_Strict):
    """The small bi-encoder and how it is fine-tuned.

    ``noise`` > 0 makes a deliberately weaker teacher (the ``fip-weak-teacher`` row):
    seeded Gaussian noise of that std is added to every cached embedding before
    re-normalising and re-calibrating. ``freeze_embeddings`` keeps the word-embedding table
    fixed during fine-tuning and ``group_by_length`` batches pairs of similar token length:
    both only make training cheaper (``results/teacher/`` has what they cost in quality).
    ``max_train_pairs`` is the teacher's own training sample: ``"data"`` (the default) the
    student's (``data.max_train_pairs``), null the whole train split, a number a seeded sample
    of that many pairs (the data's seed): a teacher fine-tuned on all of a benchmark can teach
    a student trained on a subset of it.
    """

    model: str = "minilm-l6"
    run: str | None = None
    max_train_pairs: Annotated[int, Field(ge=1)] | Literal["data"] | None = "data"
    loss: Literal["cosent", "angle", "mnrl", "contrastive"] = "cosent"
    finetune: bool = True
    epochs: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=32, ge=2)
    lr: float = Field(default=2e-5, gt=0)
    warmup_ratio: float = Field(default=0.1, ge=0, le=1)
    train_fraction: float = Field(default=1.0, gt=0, le=1)
    max_length: int = Field(default=128, ge=8)
    encode_batch_size: int = Field(default=64, ge=1)
    noise: float = Field(default=0.0, ge=0)
    seed: int = 0
    freeze_embeddings: bool = False
    group_by_length: bool = False

    @model_validator(mode="after")
    def _grouping_keeps_no_duplicates(self) -> TeacherConfig:
        if self.group_by_length and self.loss == "mnrl":
            raise ValueError(
                "group_by_length cannot be used with loss 'mnrl' (its in-batch negatives need "
                "batches without duplicate texts)"
            )
        return self


class LoraConfig(_Strict):
    """peft LoRA settings for the student."""

    rank: int = Field(default=16, ge=1)
    alpha: float = Field(default=32.0, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    layers: list[int] | None = None  # None: every layer; negative indices count from the top


class TapConfig(_Strict):
    """Where the A-side representation is read from."""

    layers: list[int] = Field(default_factory=lambda: [-1])
    modules: list[str] = Field(default_factory=lambda: ["down_proj"])
    pool: Literal["mean", "last"] = "mean"
    combine: Literal["concat", "mean"] = "concat"
    # True: the tapped modules' LoRA is shared by the representation and the label (the
    # paper); False: their B is frozen at zero, so the tapped A serves the representation only
    # and generation never reads it (a tap-only adapter, for testing interference)
    shared: bool = True


class PromptConfig(_Strict):
    """Prompt template and the two label words (positive first).

    Without a chat template the prompt ends with ``answer_suffix`` and the label word follows
    after ``label_prefix`` (None: the language's, ``"\nAnswer:"`` + ``" "`` in English,
    ``"\n答案："`` + ``""`` in Chinese).
    """

    language: Literal["auto", "en", "zh"] = "auto"
    template: str | None = None
    label_words: tuple[str, str] | None = None
    use_chat_template: bool = True
    answer_suffix: str | None = None
    label_prefix: str | None = None

    @field_validator("template")
    @classmethod
    def _slots(cls, template: str | None) -> str | None:
        problem = None if template is None else template_problem(template)
        if problem:
            raise ValueError(problem)
        return template

    @field_validator("template", "label_words", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: object) -> object:
        """Say what YAML did instead of "not a string": unquoted yes/no/on/off became
        booleans, an unquoted ``{a} ...`` became a mapping."""
        items = value if isinstance(value, list | tuple) else [value]
        if any(isinstance(v, bool) for v in items):
            raise ValueError(
                "YAML read an unquoted yes/no/on/off/true/false as a boolean; quote the words, "
                "e.g. label_words: ['yes', 'no']"
            )
        if isinstance(value, dict):
            raise ValueError(
                "YAML read a text starting with { as a mapping; quote it, e.g. "
                "template: '{a} vs {b}'"
            )
        return value


class StudentConfig(_Strict):
    """The decoder LLM and its adapters."""

    model: str = "smollm2-135m"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    tap: TapConfig = Field(default_factory=TapConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    max_length: int = Field(default=128, ge=8)
    max_text_length: int = Field(default=64, ge=4)
    # row size in tokens of packed passes (texts share rows instead of padding to the
    # longest; exact up to float rounding): training always packs; inference packs no-grad
    # batches whose padding share is above the threshold (student/body.py); 0 turns
    # training packing off (no-grad packs then use rows of 512)
    pack_tokens: int = Field(default=512, ge=0)


class LossConfig(_Strict):
    """Loss terms: L = gen_weight·L_gen + alpha·L_contrast + beta·L_dist."""

    gen: bool = True
    gen_weight: float = Field(default=1.0, ge=0)
    # L_gen's softmax: over the whole vocabulary ("full") or over the two label words only
    gen_vocab: Literal["full", "labels"] = "full"
    # L_gen's target: (1 - gen_teacher)·gold label + gen_teacher·teacher's calibrated
    # probability of the pair; 0 is the gold label alone (the paper's L_gen)
    gen_teacher: float = Field(default=0.0, ge=0, le=1)
    # L_gen's class weights: a gold positive's and a gold negative's loss weighted by their
    # class's share of the training pairs to the power -gen_balance, scaled so the weights
    # average 1 over those pairs; 0 = every pair alike (the paper's L_gen), 1 = each class
    # counts half (for data with few positives)
    gen_balance: float = Field(default=0.0, ge=0, le=1)
    # weight of L_rank (not the paper's; losses/label_rank.py): the label's log-odds over a
    # batch's pairs, listwise against the teacher's calibrated log-odds (its ranking, not
    # its level); 0 = off. Needs the label pass (gen: true)
    label_rank: float = Field(default=0.0, ge=0)
    contrastive: Literal["mcl", "arccse", "kdmcse", "infonce", "cosent", "none"] = "mcl"
    alpha: float = Field(default=1.0, ge=0)
    mcl_lambda: float = Field(default=20.0, gt=0)
    mcl_margin: float = Field(default=0.1, ge=0)
    mcl_gamma: float = Field(default=1.0, ge=0)
    temperature: float = Field(default=0.05, gt=0)
    arc_margin: float = Field(default=0.1, ge=0)
    dist: Literal["kl", "mse", "none"] = "kl"
    beta: float = Field(default=1.0, ge=0)
    dist_t_teacher: float = Field(default=0.05, gt=0)
    dist_t_student: float = Field(default=0.05, gt=0)
    # L_dist's rows (kl only): "pairs" = each pair's first text against the batch's second
    # texts (the paper's in-batch form); "texts" = every distinct text of the batch against
    # every other one, both sides alike (losses/dist.py, kl_texts_dist_loss; not the paper's)
    dist_scope: Literal["pairs", "texts"] = "pairs"
    # weight of L_tap-rank (not the paper's; losses/tap_rank.py): the A-tap's cosines of the
    # batch's labelled pairs, listwise against the teacher's (at L_dist's temperatures), the
    # comparison between pairs that L_dist's row-wise softmax leaves out; 0 = off
    tap_rank: float = Field(default=0.0, ge=0)
    filter: bool = True
    # the prior of the teacher probability P that the representation terms and the filter
    # read (theta_pos / theta_neg, MCL's in-class targets): "data" = P(match | cosine) at the
    # training pairs' share of positives; "balanced" = at an even prior (that share's
    # log-odds taken out; teacher/calibration.py). L_gen's teacher target keeps the data's.
    rep_prior: Literal["data", "balanced"] = "data"
    theta_pos: float = Field(default=0.6, ge=0, le=1)
    theta_neg: float = Field(default=0.4, ge=0, le=1)

    @model_validator(mode="after")
    def _thresholds(self) -> LossConfig:
        if self.filter and self.theta_neg >= self.theta_pos:
            raise ValueError(
                f"theta_neg ({self.theta_neg}) must be below theta_pos ({self.theta_pos})"
            )
        if self.dist_scope == "texts" and self.dist == "mse":
            raise ValueError(
                "dist_scope 'texts' needs dist: kl: the mse form reads the kept pairs' "
                "calibrated probabilities, which only pairs have"
            )
        if self.label_rank > 0 and not self.gen:
            raise ValueError("label_rank needs the generated label's pass: set gen: true")
        return self


class TrainConfig(_Strict):
    """The training loop."""

    steps: int = Field(default=60, ge=1)
    batch_size: int = Field(default=16, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    # 0: random batches; N > 0: batches drawn from k-means clusters of the training pairs'
    # teacher embeddings, about N pairs a cluster, so in-batch negatives are near misses
    # (trainer/hard_batches.py)
    hard_batches: int = Field(default=0, ge=0)
    lr: float = Field(default=2e-4, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    adam_beta2: float = Field(default=0.999, gt=0, lt=1)
    warmup_ratio: float = Field(default=0.05, ge=0, le=1)
    # after warm-up the learning rate follows a cosine from lr down to min_lr_ratio * lr at
    # the last step (0: down to 0, transformers' get_cosine_schedule_with_warmup)
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    # "global": one norm over every trainable parameter; "tap-apart": the tapped A matrices
    # (where the representation terms' large gradients land) are clipped apart from the rest,
    # so the label's parameters are clipped as in sft whatever the representation terms do;
    # "term-apart": the label term's gradient and the representation terms' gradient are each
    # clipped by its own norm, then added (neither shrinks the other's step, wherever the tap is)
    clip_scope: Literal["global", "tap-apart", "term-apart"] = "global"
    # which LoRA matrices each loss term trains, when a row has both the label term and the
    # representation terms (it routes term-apart's two gradients, trainer/clip.py ROUTES):
    # "shared": both terms train A and B; "split": the representation terms train only the
    # A matrices (the encoder the A-tap reads), the label only the B matrices; "rep-a": the
    # representation terms train only A, the label both. A row with one term trains all.
    grad_route: Literal["shared", "split", "rep-a"] = "shared"
    # under term-apart, the norm the representation terms' gradient is clipped to (None: the
    # label's, max_grad_norm); above it, their step weighs more against the label's
    rep_max_grad_norm: float | None = Field(default=None, gt=0)
    gradient_checkpointing: bool = False
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    eval_every: int = Field(default=0, ge=0)
    save_every: int = Field(default=20, ge=0)
    log_every: int = Field(default=1, ge=1)
    # every N steps log per-term gradient norms, anisotropy, collapse values (trainer/diagnose.py)
    diagnose_every: int = Field(default=0, ge=0)
    seed: int = 0
    threads: int | None = Field(default=None, ge=1)
    select_metric: Literal["gen_roc_auc", "gen_ap", "rep_roc_auc", "rep_ap"] = "gen_roc_auc"
    keep_checkpoints: int = Field(default=2, ge=1)
    eval_max_pairs: int | None = Field(default=None, ge=1)
    # frozen-prefix activation cache (student/prefix.py): exact, skips the frozen bottom
    # layers for token sequences seen before; memory cap in GB, 0 turns it off
    prefix_cache_gb: float = Field(default=2.0, ge=0)
    # precision the frozen layers run in to fill that cache (no gradient passes through
    # them): auto follows mixed_precision (trainer/precision.py)
    prefix_dtype: Literal["auto", "float32", "bfloat16"] = "auto"

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `no` (in a file or `train.mixed_precision=no`) as false
        return "no" if value is False else value

    @model_validator(mode="after")
    def _term_apart_checks(self) -> TrainConfig:
        if self.clip_scope == "term-apart" and self.mixed_precision == "fp16":
            raise ValueError(
                "clip_scope 'term-apart' does not work with fp16 loss scaling; "
                "use mixed_precision bf16 or no"
            )
        if self.rep_max_grad_norm is not None and self.clip_scope != "term-apart":
            raise ValueError(
                "rep_max_grad_norm clips the representation terms' gradient that clip_scope "
                "'term-apart' keeps apart; set train.clip_scope=term-apart"
            )
        if self.grad_route != "shared" and self.clip_scope != "term-apart":
            raise ValueError(
                f"grad_route {self.grad_route!r} routes the two terms' gradients that "
                f"clip_scope 'term-apart' keeps apart; set train.clip_scope=term-apart"
            )
        return self


class FlipkdConfig(_Strict):
    """A whole run."""

    name: str = "run"
    output_dir: str = Field(default="runs", min_length=1)
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _trainable(self) -> FlipkdConfig:
        problem = loss_problem(self.loss, self.train)
        if problem:
            raise ValueError(problem)
        return self

    @field_validator("name")
    @classmethod
    def _inside_output_dir(cls, name: str) -> str:
        """The run directory ``output_dir/name`` must stay inside ``output_dir``."""
        parts = PureWindowsPath(name).parts + PurePosixPath(name).parts
        if not name.strip() or name.strip() in (".", "./"):
            raise ValueError("must name a directory (it is empty)")
        if PurePosixPath(name).is_absolute() or PureWindowsPath(name).anchor or ".." in parts:
            raise ValueError(
                f"{name!r} would put the run outside output_dir; use a relative name without '..'"
            )
        if "\0" in name:
            raise ValueError("holds a NUL character")
        return name

    @field_validator("output_dir")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\0" in value:
            raise ValueError("holds a NUL character")
        return value
