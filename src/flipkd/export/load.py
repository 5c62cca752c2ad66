"""``flipkd.load(DIR)``: an exported student (or a student run directory) as a matcher.

The matcher rebuilds the student from its base model (through the model
registry for a registered name, else the recorded path) plus the peft adapter,
with the recorded tap and prompt, in eval mode. It satisfies the serve layer's
``Matcher`` protocol:

* ``encode(texts)``: A-tap representations, ``[n, d]`` float32, L2-normalised;
* ``score_pairs(pairs, mode="gen")``: P(positive label word), in [0, 1];
* ``score_pairs(pairs, mode="rep")``: the cosine of the two representations, in [-1, 1]
  (the scale training, evaluation and the ladder use; see ``flipkd.modes``);
* ``threshold``: the per-mode decision thresholds, each on its mode's scale.

By default B·A is merged into the base weights (faster generation); the A-tap
still reads ``A · x`` on the merged model, so both modes keep working.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flipkd.config import PromptConfig, StudentConfig, TapConfig
from flipkd.errors import ModelError
from flipkd.export.export import base_hashes, read_student_run
from flipkd.export.spec import EXPORT_FILE, BaseRef, ExportSpec, read_spec
from flipkd.export.thresholds import choose_mix, choose_thresholds, collect_evals
from flipkd.mixing import MixScales
from flipkd.modes import MODES, check_mode

log = logging.getLogger(__name__)


class FlipkdMatcher:
    """A loaded student: both scoring modes, thresholds and the export's description.

    Attributes:
        name: The export (or run) directory's name.
        threshold: Per-mode decision thresholds (gen: a probability, rep: a cosine).
        spec: The ``flipkd.json`` content (or its equivalent for a run directory).
        student: The underlying :class:`flipkd.student.Student`.
        share_prefix: Gen-mode pairs with the same first text (a query and its re-ranking
            candidates) run their common prompt prefix once (on by default; the scores are
            the same up to float rounding).
        precision: The dtype every weight runs in, ``float32`` or ``bfloat16``
            (``flipkd.student.precision``).
    """

    def __init__(
        self, name: str, student, spec: dict[str, Any], *, merged: bool, precision: str = "float32"
    ) -> None:
        self.name, self.student, self.spec, self.merged = name, student, spec, merged
        self.precision = precision
        self.share_prefix = True
        self.threshold: dict[str, float] = {m: float(spec["thresholds"][m]) for m in MODES}
        # the mix mode, where an eval fixed its dev scales (flipkd.json's "mix")
        mix = spec.get("mix")
        self.mix = MixScales(**{f.name: mix[f.name] for f in fields(MixScales)}) if mix else None
        if mix:
            self.threshold["mix"] = float(mix["threshold"])

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """A-tap representations ``[n, d]`` (float32, L2-normalised)."""
        from flipkd.student import encode

        return encode(self.student, list(texts), batch_size=batch_size).astype(
            np.float32, copy=False
        )

    def score_pairs(
        self, pairs: Sequence[tuple[str, str]], mode: str = "gen", batch_size: int = 16
    ) -> np.ndarray:
        """Match scores ``[n]``: P(positive label word) (gen), the A-tap cosine (rep), or the
        two mixed on the dev scales the export holds (mix; an export without them refuses)."""
        from flipkd.student import score_pairs

        if mode == "mix":
            return self._mixed(pairs, batch_size)
        mode = check_mode(mode)
        return score_pairs(
            self.student, list(pairs), mode=mode, batch_size=batch_size,
            share_prefix=self.share_prefix,
        )  # fmt: skip

    def _mixed(self, pairs: Sequence[tuple[str, str]], batch_size: int) -> np.ndarray:
        if self.mix is None:
            raise ModelError(
                f"{self.name}: no mix mode (its dev scales come from `flipkd eval RUN --split dev "
                "--mode mix` or a ladder row, before export)"
            )
        gen = self.score_pairs(pairs, "gen", batch_size)
        rep = self.score_pairs(pairs, "rep", batch_size)
        return np.asarray(self.mix(rep, gen), dtype=np.float64)

    def cosine_pairs(self, pairs: Sequence[tuple[str, str]], batch_size: int = 16) -> np.ndarray:
        """The A-tap cosine in [-1, 1]: ``score_pairs(pairs, mode="rep")``."""
        return self.score_pairs(pairs, "rep", batch_size)

    def predict(self, pairs: Sequence[tuple[str, str]], mode: str = "gen") -> np.ndarray:
        """Boolean match decisions at this mode's threshold."""
        return self.score_pairs(pairs, mode) >= self.threshold[mode]

    @torch.inference_mode()
    def label_logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The two label-word logits ``[n, 2]`` (positive first), one pair at a time."""
        self.student.model.eval()
        rows = [self.student.gen_forward([p]).label_logits[0].float().cpu().numpy() for p in pairs]
        return np.stack(rows) if rows else np.zeros((0, 2), np.float32)

    def __repr__(self) -> str:
        return (
            f"FlipkdMatcher({self.name!r}, threshold={self.threshold}, merged={self.merged}, "
            f"precision={self.precision!r})"
        )


# --- where the pieces are ---------------------------------------------------------------------
def _export_source(path: Path) -> tuple[ExportSpec, Path]:
    spec = read_spec(path / EXPORT_FILE)
    return spec, path / spec.adapter_dir


def _run_source(path: Path) -> tuple[ExportSpec, Path]:
    """The flipkd.json-equivalent of a student run (base resolved, not hashed)."""
    from flipkd.student.prompt import resolve_prompt

    run = read_student_run(path)
    sc = run.config.student
    prompt = resolve_prompt(sc.prompt, run.config.data.benchmark)
    evals = collect_evals(path)
    thresholds, sources = choose_thresholds(evals)
    spec = ExportSpec(
        name=run.config.name,
        base_model=BaseRef(name=sc.model, registered=None, path=None),
        tap=sc.tap.model_dump(mode="json"),
        prompt={
            "language": prompt.language,
            "template": prompt.template,
            "label_words": list(prompt.label_words),
            "use_chat_template": sc.prompt.use_chat_template,
            "answer_suffix": prompt.answer_suffix,
            "label_prefix": prompt.label_prefix,
        },
        max_length=sc.max_length,
        max_text_length=sc.max_text_length,
        thresholds=thresholds,
        threshold_sources=sources,
        **choose_mix(evals),
    )
    return spec, run.adapter_dir


SOURCES: dict[str, Callable[[Path], tuple[ExportSpec, Path]]] = {
    EXPORT_FILE: _export_source,
    "run.json": _run_source,
}


def _base_path(base: BaseRef) -> str:
    """Registered name → registry (converted on demand); else the recorded path, else the name."""
    from flipkd.models import REGISTRY, resolve_student

    if base.registered or base.name in REGISTRY:
        return resolve_student(base.name).path
    for candidate in (base.path, base.name):
        if candidate and Path(candidate).expanduser().is_dir():
            return str(Path(candidate).expanduser())
    return resolve_student(base.name).path  # a hub id, or a one-line ModelError


def _verify_base(base: BaseRef, path: str, hash_weights: bool) -> None:
    recorded = {k: getattr(base, k) for k in ("config_hash", "weights_hash") if getattr(base, k)}
    if not recorded or not Path(path).is_dir():
        return
    found = base_hashes(Path(path), hash_weights=hash_weights and "weights_hash" in recorded)
    for key, value in recorded.items():
        if key in found and found[key] != value:
            raise ModelError(
                f"base model {base.name!r} differs from the exported one ({key} {found[key]} != "
                f"{value}); use the base the adapter was trained on",
                where=path,
            )


def _student_config(spec: ExportSpec, base_path: str) -> StudentConfig:
    """The recorded tap and prompt as a student config (LoRA settings come with the adapter)."""
    return StudentConfig(
        model=base_path,
        tap=TapConfig(**spec.tap.model_dump(include=set(TapConfig.model_fields))),
        prompt=PromptConfig(**spec.prompt.model_dump(include=set(PromptConfig.model_fields))),
        max_length=spec.max_length,
        max_text_length=spec.max_text_length,
    )


def _check_labels(student, spec: ExportSpec, where: str) -> None:
    recorded = spec.prompt.label_token_ids
    if recorded is not None and list(student.label_ids) != list(recorded):
        raise ModelError(
            f"label words tokenise to {list(student.label_ids)}, the export recorded {recorded}: "
            "the tokenizer differs from the one the student was trained with",
            where=where,
        )


def _try_merge(student) -> bool:
    """Fold B·A into the base weights; False (and a warning) where peft cannot."""
    from flipkd.student.lora import set_merged

    try:
        set_merged(student.model, True)
    except (ValueError, RuntimeError, NotImplementedError) as err:
        log.warning("could not merge the adapter (%s); generation runs unmerged", err)
        return False
    return True


def load_matcher(
    path: str | Path,
    *,
    merge: bool = True,
    verify_base: bool = True,
    threads: int | None = None,
    precision: str = "float32",
) -> FlipkdMatcher:
    """Load an export directory (``flipkd.json``) or a student run directory (``run.json``).

    Args:
        path: The directory.
        merge: Fold B·A into the base weights for faster generation (when possible).
        verify_base: Check the base model's recorded hashes (reads its weights once).
        threads: ``torch.set_num_threads`` before loading, if given.
        precision: ``float32`` (the scores the export's thresholds were chosen on),
            ``bfloat16``, or ``auto`` (bf16 where the hardware multiplies it natively).

    Raises:
        ModelError: Not an export or run directory, base model missing or different.
        FlipkdError: A run directory that is not a student run.
    """
    from flipkd.student import assemble_student, load_base
    from flipkd.student.precision import cast_for_inference, resolve_inference_precision

    resolve_inference_precision(precision)  # a bad value fails before the slow load
    path = Path(path)
    kind = next((f for f in SOURCES if (path / f).is_file()), None)
    if kind is None:
        raise ModelError(
            f"not a flipkd export ({EXPORT_FILE}) or run directory (run.json)", where=str(path)
        )
    if threads:
        torch.set_num_threads(threads)
    spec, adapter_dir = SOURCES[kind](path)
    base_path = _base_path(spec.base_model)
    _verify_base(spec.base_model, base_path, verify_base)
    model, tokenizer = load_base(base_path)
    student = assemble_student(
        model, tokenizer, _student_config(spec, base_path), adapter_dir=adapter_dir, trainable=False
    )
    _check_labels(student, spec, str(path))
    student.model.eval()
    merged = merge and _try_merge(student)
    dtype = cast_for_inference(student, precision)
    log.info("loaded %s (%s) on base %s, merged=%s, %s", path, kind, base_path, merged, dtype)
    return FlipkdMatcher(
        path.resolve().name, student, spec.to_json(), merged=merged, precision=dtype
    )
