"""Dev sweeps: choose a default by training each candidate and scoring it on dev only.

A sweep spec (YAML) names a profile, a benchmark, the ladder rows to train, seeds, and
named variants (each a list of dotted overrides on top of the profile)::

    name: mqp-layers              # results go to results/dev/<benchmark>/<name>/
    benchmark: mqp
    profile: cpu
    rows: [sft, fip]              # trained rows; "teacher" adds its cosine on the same dev pairs
    seeds: 1                      # or a list, e.g. [0, 1]
    overrides: [data.max_dev_pairs=null]   # shared by every variant (null: all of dev)
    variants:
      top4: []
      top12: ["student.lora.layers=[-12,-11,-10,-9,-8,-7,-6,-5,-4,-3,-2,-1]"]
    variant_rows: {top12: [fip]}   # optional: a variant that trains only some of the rows

Every run is kept by config hash (``<work>/runs/<variant>/<row>-s<seed>-<hash>/``), so a
killed sweep continues where it stopped: finished runs are read back, an unfinished
training run resumes from its last checkpoint. Only the dev split is scored — test is never
read while choosing. Each variant is compared with the first one on the same dev pairs by a
paired bootstrap, which says how large a difference this dev set can resolve.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from flipkd.config import config_hash
from flipkd.errors import CacheError, ConfigError
from flipkd.paths import write_json
from flipkd.provenance import process_commit
from flipkd.reproduce.ladder import ROWS, TRAINED, build_config

log = logging.getLogger(__name__)

BOOTSTRAP = 1000


class SweepSpec(BaseModel):
    """What a sweep trains: profile × benchmark × rows × seeds × variants."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    benchmark: str = "mqp"
    profile: str = "cpu"
    rows: list[str] = Field(default_factory=lambda: ["fip"], min_length=1)
    seeds: int | list[int] = 1
    overrides: list[str] = Field(default_factory=list)
    variants: dict[str, list[str]] = Field(min_length=1)
    # a row the others are compared with inside each variant (paired, same seed): "fip vs sft"
    row_baseline: str | None = None
    # the variant whose row_baseline runs the others are compared with (default: each
    # variant's own): "does fip with option X beat the ladder's plain sft?"
    row_baseline_variant: str | None = None
    # the rows a variant trains when not all of them (an option only one row needs asking:
    # "fip with X" against the plain sft, without training "sft with X" as well)
    variant_rows: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("rows")
    @classmethod
    def _known_rows(cls, rows: list[str]) -> list[str]:
        bad = [r for r in rows if r != "teacher" and ROWS.get(r, ("",))[0] != TRAINED]
        if bad:
            trained = [r for r, (kind, _) in ROWS.items() if kind == TRAINED]
            raise ValueError(
                f"rows {bad} are not trained rows; choose from {trained} (or teacher, the "
                "reference)"
            )
        return rows

    @field_validator("row_baseline")
    @classmethod
    def _baseline_is_a_row(cls, row: str | None, info: ValidationInfo) -> str | None:
        rows = info.data.get("rows", [])
        if row is not None and row not in rows:
            raise ValueError(f"{row!r} is not one of rows {rows}")
        return row

    @field_validator("row_baseline_variant")
    @classmethod
    def _baseline_variant_is_a_variant(cls, name: str | None, info: ValidationInfo) -> str | None:
        if name is None:
            return name
        if info.data.get("row_baseline") is None:
            raise ValueError("needs row_baseline (the row to take from that variant)")
        variants = list(info.data.get("variants", {}))
        if name not in variants:
            raise ValueError(f"{name!r} is not one of variants {variants}")
        return name

    @field_validator("variant_rows")
    @classmethod
    def _variant_rows_are_known(
        cls, chosen: dict[str, list[str]], info: ValidationInfo
    ) -> dict[str, list[str]]:
        variants, rows = list(info.data.get("variants", {})), info.data.get("rows", [])
        for variant, its_rows in chosen.items():
            if variant not in variants:
                raise ValueError(f"{variant!r} is not one of variants {variants}")
            if not its_rows or (bad := [r for r in its_rows if r not in rows]):
                raise ValueError(
                    f"{variant}: {bad if its_rows else 'no rows'}; give some of rows {rows}"
                )
        return chosen

    def rows_of(self, variant: str) -> list[str]:
        """The rows this variant trains (all of them unless ``variant_rows`` says)."""
        return self.variant_rows.get(variant, self.rows)

    def baseline_homes(self) -> dict[str, str]:
        """Per variant, the variant whose ``row_baseline`` runs its other rows are compared
        with: ``row_baseline_variant`` when set, else its own, or the first variant's when it
        does not train that row (``variant_rows``: an option only fip gets, against the
        profile's sft)."""
        first = next(iter(self.variants), "")
        own = {v: v if self.row_baseline in self.rows_of(v) else first for v in self.variants}
        return {v: self.row_baseline_variant or home for v, home in own.items()}

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


def load_spec(path: Path) -> SweepSpec:
    """Read and validate a sweep spec; errors name the file and the field."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the sweep spec: {exc}".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep spec is a mapping (name, variants, ...)")
    from pydantic import ValidationError

    try:
        return SweepSpec(**raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{path}: {where}: {msg}") from None


def _run_one(cfg, row: str, splits: dict, cache, run_dir: Path, progress: bool) -> dict:
    """Train one candidate (resumable) and score it on dev in both modes."""
    from flipkd.reproduce.scoring import student_scores
    from flipkd.reproduce.weak import weak_teacher_cache
    from flipkd.student import build_student
    from flipkd.trainer import train_student
    from flipkd.trainer.checkpoint import latest_checkpoint

    cache = weak_teacher_cache(cfg, cache, splits["train"])
    student = build_student(
        cfg.student, benchmark=cfg.data.benchmark,
        gradient_checkpointing=cfg.train.gradient_checkpointing, init_seed=cfg.train.seed,
    )  # fmt: skip
    resume = latest_checkpoint(run_dir / "checkpoints") is not None
    result = train_student(
        cfg, run_dir, cache=cache, train_pairs=splits["train"], dev_pairs=splits["dev"],
        resume=resume, student=student, progress=progress,
    )  # fmt: skip
    start = time.perf_counter()
    scores = student_scores(student, {"dev": splits["dev"]}, progress, split_names=("dev",))
    return {
        "scores": scores,
        "train_seconds": result.seconds,
        "eval_seconds": time.perf_counter() - start,
        "last_log": result.last_log,
    }


def _teacher_reference(cache, splits: dict) -> dict:
    """The teacher's cosine on the same dev pairs (the same numbers stand for both modes)."""
    from flipkd.reproduce.scoring import teacher_scores

    start = time.perf_counter()
    scores = teacher_scores(cache, splits, split_names=("dev",))
    return {"scores": scores, "train_seconds": 0.0, "eval_seconds": time.perf_counter() - start}


def dev_summary(scores: dict, generated: bool = True) -> dict[str, float | None]:
    """Threshold-free dev metrics per mode, plus gen accuracy of the generated label (None
    for the teacher, whose gen score is a cosine)."""
    from flipkd.reproduce.scoring import dev_metrics

    out: dict[str, float | None] = dict(dev_metrics(scores))
    gen, y = np.asarray(scores["dev"]["gen"]), np.asarray(scores["dev"]["labels"])
    out["gen_label_accuracy"] = float(((gen >= 0.5) == (y == 1)).mean()) if generated else None
    return out


def train_time_known(run_dir: Path) -> bool:
    """Whether the run's training time covers all of its training: its
    ``train_summary.json`` says ``seconds_complete`` (written since training time is kept
    across invocations; older summaries lack it, and a run resumed at its last step then
    recorded only that invocation's few milliseconds). No summary: nothing was trained
    (the teacher reference), so its 0 s is right."""
    summary = Path(run_dir) / "train_summary.json"
    if not summary.is_file():
        return True
    return bool(_run_json(summary).get("seconds_complete", False))


def _run_json(path: Path) -> dict:
    """A JSON file a finished run wrote; one line naming it when it cannot be read."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"{path}: cannot read this finished run's record ({exc})".splitlines()[0]
        raise CacheError(f"{msg}; delete its directory to run it again") from None


def _read_back(done: Path, variant: str, overrides: list[str]) -> dict:
    """A finished run's record under this sweep's variant name and overrides.

    The run was found by config hash, so it is this variant's training whatever another
    sweep (whose work directory it was copied from) called it; the name it had there is
    kept as ``read_from_variant`` when it differs.
    """
    from flipkd.reproduce.scoring import with_mix

    old = _run_json(done)
    record = {**old, "run_dir": str(done.parent), "read_back": True}
    if "dev" in old.get("scores", {}):  # a run finished before the mix mode existed gains it
        record["scores"] = with_mix(old["scores"])
        record["dev"] = {
            **old.get("dev", {}),
            **dev_summary(record["scores"], old["row"] != "teacher"),
        }
    record["train_seconds_known"] = train_time_known(done.parent)
    if old.get("variant") != variant:
        record["read_from_variant"] = old.get("variant")
    record.update(variant=variant, overrides=overrides)
    return record


def _finished(work_dir: Path, run_dir: Path) -> Path | None:
    """The result of this run (row, seed, config hash) if it finished, here or under another
    variant of the sweep whose overrides leave this row's config as it is (e.g. a change to
    the representation terms, for ``sft``): such a run is computed once."""
    if (own := run_dir / "sweep_result.json").is_file():
        return own
    return next(iter(sorted((work_dir / "runs").glob(f"*/{run_dir.name}/sweep_result.json"))), None)


def _missing(variant: str, row: str, seed: int, overrides: list[str], cfg, run_dir: Path) -> dict:
    """The record of a run that has not finished: where it is and how far it got."""
    from flipkd.trainer.checkpoint import latest_checkpoint

    newest = latest_checkpoint(run_dir / "checkpoints")
    return {
        "variant": variant, "row": row, "seed": seed, "overrides": overrides, "missing": True,
        "config_hash": config_hash(cfg), "run_dir": str(run_dir),
        "checkpoint_step": int(newest.name.split("-")[1]) if newest else None,
        "steps": cfg.train.steps if row != "teacher" else None,
    }  # fmt: skip


def run_sweep(
    spec: SweepSpec, work_dir: Path, progress: bool = True, *, finished_only: bool = False
) -> list[dict]:
    """Run (or read back) every variant × row × seed; returns one record per run.

    With ``finished_only`` nothing is trained: a run that has not finished gets a record with
    ``missing: True`` (and its newest checkpoint, if it started), for a report of a sweep
    still under way.
    """
    from flipkd.recipes.pipeline import ensure_teacher, load_splits
    from flipkd.reproduce.ladder import _teacher_dir, _teacher_key
    from flipkd.reproduce.profiles import PROFILES
    from flipkd.teacher.workflow import kept_model

    if spec.profile not in PROFILES:
        raise ConfigError(f"profile: unknown {spec.profile!r}; choose one of {', '.join(PROFILES)}")
    profile = PROFILES[spec.profile]
    for variant, extra in spec.variants.items():  # every config checked before any work
        for row in spec.rows_of(variant):
            try:
                build_config(profile, spec.benchmark, row, 0, [*spec.overrides, *extra])
            except ConfigError as err:
                raise ConfigError(f"sweep {spec.name!r}, variant {variant!r}: {err}") from None
    process_commit()  # the code this process runs, before any run (they record it)
    records = []
    for seed in spec.seed_list:
        teachers: dict[str, Any] = {}
        for variant, extra in spec.variants.items():
            overrides = [*spec.overrides, *extra]
            for row in spec.rows_of(variant):
                cfg = build_config(profile, spec.benchmark, row, seed, overrides)
                run_dir = work_dir / "runs" / variant / f"{row}-s{seed}-{config_hash(cfg)}"
                done = _finished(work_dir, run_dir)
                tdir = _teacher_dir(cfg, work_dir)
                if done is not None:
                    kept = kept_model(tdir) if tdir.is_dir() else None
                    records.append({**_read_back(done, variant, overrides), "teacher_kept": kept})
                    continue
                if finished_only:
                    records.append(_missing(variant, row, seed, overrides, cfg, run_dir))
                    continue
                key = _teacher_key(cfg)
                if key not in teachers:
                    splits = load_splits(cfg, ("train", "dev"))
                    teachers[key] = (splits, ensure_teacher(cfg, tdir, splits, progress)[1])
                log.info("sweep %s: variant %s, row %s, seed %d", spec.name, variant, row, seed)
                record = _compute(cfg, variant, row, seed, overrides, run_dir, *teachers[key],
                                  progress)  # fmt: skip
                records.append({**record, "teacher_kept": kept_model(tdir)})
                write_json(run_dir / "sweep_result.json", records[-1])
    return records


def _compute(
    cfg, variant: str, row: str, seed: int, overrides: list[str], run_dir: Path, splits: dict,
    cache, progress: bool,
) -> dict:  # fmt: skip
    """Train (or, for the teacher row, just score) one run; its record but the teacher's."""
    t0 = time.perf_counter()
    out = (
        _teacher_reference(cache, splits) if row == "teacher"
        else _run_one(cfg, row, splits, cache, run_dir, progress)
    )  # fmt: skip
    return {
        "variant": variant, "row": row, "seed": seed, "overrides": overrides,
        "config_hash": config_hash(cfg), "wall_seconds": time.perf_counter() - t0,
        "git_commit": process_commit(),  # the code this run computed with
        "run_dir": str(run_dir), "train_seconds_known": train_time_known(run_dir),
        "dev": dev_summary(out["scores"], generated=row != "teacher"), **out,
    }  # fmt: skip
