"""The ablation ladder: each row is a config change; each finished run is kept by its hash.

Rows (named exactly so in ``results.json``): ``teacher``, ``zero-shot``, ``sft`` (LoRA,
L_gen only), ``fip-arccse`` / ``fip-kdmcse`` (MCL replaced by a baseline), ``fip``
(L_gen + MCL + L_dist + filter), ``fip-no-mcl``, ``fip-no-dist``, ``fip-no-filter``,
``fip-weak-teacher``. A killed ladder continues where it stopped: finished rows are
read back from ``runs/<row>-s<seed>-<config hash>/result.json`` and an unfinished
training run resumes from its last checkpoint.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flipkd.config import FlipkdConfig, config_hash
from flipkd.config.loader import apply_overrides, validate
from flipkd.errors import ConfigError
from flipkd.paths import write_json
from flipkd.provenance import process_commit
from flipkd.reproduce.profiles import PROFILES, WEAK_TEACHER_NOISE, Profile
from flipkd.reproduce.records import is_imported
from flipkd.reproduce.scoring import (
    dev_metrics,
    evaluate_scores,
    student_scores,
    teacher_scores,
    with_mix,
)

log = logging.getLogger(__name__)

TRAINED = "trained"
# sft-kd's L_gen target: half gold label, half the teacher's probability (docs/quality.md §15:
# +0.02 dev gen ROC-AUC for sft on MQP and ATEC at this λ)
SFT_KD_TEACHER_SHARE = 0.5
# Rows that train nothing keep the loss options a profile adds for fip at their neutral value:
# they compute nothing with them, and so a run kept by config hash is still found after the
# profile's fip recipe changes (loss.label_rank: 3 in cpu/gpu since 2026-12-05). Rows without
# L_dist keep its scope at the neutral value for the same reason.
_NO_DIST = {"loss.dist": "none", "loss.dist_scope": "pairs"}
_UNTRAINED = {"loss.label_rank": 0.0, "loss.tap_rank": 0.0, "loss.dist_scope": "pairs"}
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "teacher": ("teacher", _UNTRAINED),
    "zero-shot": ("zero-shot", _UNTRAINED),
    # sft learns from gold labels only, whatever the profile says about the teacher
    "sft": (
        TRAINED,
        {
            "loss.contrastive": "none",
            "loss.dist": "none",
            "loss.gen_teacher": 0.0,
            **_UNTRAINED,
        },
    ),  # fmt: skip
    # plain distillation into the label: sft's terms, L_gen's target mixed with the teacher's
    # probability; the baseline for "the flipped terms help the label" (opt-in: --row sft-kd)
    "sft-kd": (
        TRAINED,
        {
            "loss.contrastive": "none",
            "loss.dist": "none",
            "loss.gen_teacher": SFT_KD_TEACHER_SHARE,
            **_UNTRAINED,
        },
    ),  # fmt: skip
    "fip-arccse": (TRAINED, {"loss.contrastive": "arccse"}),
    "fip-kdmcse": (TRAINED, {"loss.contrastive": "kdmcse"}),
    "fip": (TRAINED, {}),
    "fip-no-mcl": (TRAINED, {"loss.contrastive": "none"}),
    "fip-no-dist": (TRAINED, _NO_DIST),
    "fip-no-filter": (TRAINED, {"loss.filter": False}),
    "fip-weak-teacher": (TRAINED, {"teacher.noise": WEAK_TEACHER_NOISE}),
}


def build_config(
    profile: Profile, benchmark: str, row: str, seed: int, overrides: list[str]
) -> FlipkdConfig:
    """Profile → benchmark specifics → row change → seed → user overrides, validated."""
    chosen = {**profile.overrides, **profile.benchmark_overrides.get(benchmark, {})}
    layers = {
        **chosen, **ROWS[row][1], "data.benchmark": benchmark, "train.seed": seed,
        # a profile that fixes the teacher's seed shares one teacher between the seeds
        "teacher.seed": chosen.get("teacher.seed", seed), "name": f"{row}-s{seed}",
    }  # fmt: skip
    if profile.cpu_bf16:
        from flipkd.trainer.precision import cpu_bf16_pays

        if cpu_bf16_pays():
            layers["train.mixed_precision"] = "bf16"
    raw = apply_overrides({}, [f"{k}={_yaml(v)}" for k, v in layers.items()] + list(overrides))
    return validate(raw, f"profile {profile.name}, row {row}")


def _yaml(value: Any) -> str:
    import json

    return json.dumps(value)


def _teacher_key(cfg: FlipkdConfig) -> str:
    from flipkd.paths import hash_text

    t = cfg.teacher.model_dump(exclude={"noise", "encode_batch_size"})
    if t["max_train_pairs"] == "data":  # the option's default keeps the keys made before it
        del t["max_train_pairs"]
    return hash_text(repr(sorted(t.items())), repr(cfg.data.model_dump()))


def _run_teacher(cfg, splits, cache, run_dir, progress) -> dict:
    return {"scores": teacher_scores(cache, splits), "train_seconds": 0.0}


def _zero_shot_gen(cfg: FlipkdConfig, runs_dir: Path) -> tuple[dict, str] | None:
    """A finished ``zero-shot`` run of another seed whose config is this one's but for the
    seed: its scores and run directory, or None.

    Untrained, the adapters' B matrices are zero, so the generated label is the base model's
    whatever the seed (which draws only the random A matrices the A-tap reads): a ladder
    scores the zero-shot label once, not once per seed.
    """
    import json

    for path in sorted(runs_dir.glob("zero-shot-s*-*/result.json")):
        found = re.fullmatch(r"zero-shot-s(\d+)-[0-9a-f]+", path.parent.name)
        if not found or int(found.group(1)) == cfg.train.seed:
            continue
        other = cfg.model_copy(deep=True)
        if cfg.teacher.seed == cfg.train.seed:  # a ladder seeds both (the label reads neither)
            other.teacher.seed = int(found.group(1))
        other.train.seed = int(found.group(1))
        if path.parent.name.endswith(f"-{config_hash(other)}"):
            try:
                return json.loads(path.read_text())["scores"], str(path.parent)
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
                log.warning("zero-shot: %s unreadable (%s); scoring the label again", path, exc)
    return None


def _run_zero_shot(cfg, splits, cache, run_dir, progress) -> dict:
    from flipkd.student import build_student
    from flipkd.trainer.precision import prefix_dtype

    student = build_student(cfg.student, benchmark=cfg.data.benchmark, init_seed=cfg.train.seed)
    dtype = prefix_dtype(cfg.train)  # the trained rows' cache, shared with them
    student.enable_prefix_cache(cfg.student.model, cfg.train.prefix_cache_gb, dtype)
    known = _zero_shot_gen(cfg, Path(run_dir).parent)
    if known is not None:
        log.info("zero-shot: the generated label's scores of %s (seed-independent)", known[1])
    scores = student_scores(student, splits, progress, known_gen=known[0] if known else None)
    out = {"scores": scores, "train_seconds": 0.0}
    if known is not None:
        out["gen_scores_from"] = known[1]
    return out


def _run_trained(cfg, splits, cache, run_dir, progress) -> dict:
    from flipkd.reproduce.weak import weak_teacher_cache
    from flipkd.student import build_student
    from flipkd.trainer import train_student
    from flipkd.trainer.checkpoint import latest_checkpoint

    extra: dict[str, Any] = {}
    if cfg.teacher.noise > 0:
        cache = weak_teacher_cache(cfg, cache, splits["train"])
        extra["teacher_scores"] = teacher_scores(cache, splits)
    student = build_student(
        cfg.student,
        benchmark=cfg.data.benchmark,
        gradient_checkpointing=cfg.train.gradient_checkpointing,
        init_seed=cfg.train.seed,
    )
    resume = latest_checkpoint(run_dir / "checkpoints") is not None
    result = train_student(
        cfg, run_dir, cache=cache, train_pairs=splits["train"], resume=resume,
        student=student, progress=progress,
    )  # fmt: skip
    return {
        "scores": student_scores(student, splits, progress),
        "train_seconds": result.seconds,
        **extra,
    }


# Runners that read no teacher: a seed whose unfinished rows are all of these neither trains
# nor loads its teacher.
NO_TEACHER = frozenset({"zero-shot"})

ROW_RUNNERS: dict[str, Callable[..., dict]] = {
    "teacher": _run_teacher,
    "zero-shot": _run_zero_shot,
    TRAINED: _run_trained,
}


def _result_path(cfg: FlipkdConfig, row: str, out_dir: Path) -> Path:
    return out_dir / "runs" / f"{row}-s{cfg.train.seed}-{config_hash(cfg)}" / "result.json"


def run_row(
    cfg: FlipkdConfig, row: str, splits: dict, cache, out_dir: Path, progress: bool
) -> dict:
    """Run one row for one seed, or read back its finished result."""
    done = _result_path(cfg, row, out_dir)
    run_dir = done.parent
    if done.is_file():
        log.info("row %s: finished earlier (%s)", row, run_dir)
        return _read_back(done)
    log.info("row %s, seed %d: running in %s", row, cfg.train.seed, run_dir)
    start = time.perf_counter()
    result = ROW_RUNNERS[ROWS[row][0]](cfg, splits, cache, run_dir, progress)
    result.update(
        row=row, seed=cfg.train.seed, config_hash=config_hash(cfg),
        wall_seconds=time.perf_counter() - start, git_commit=process_commit(),
    )  # fmt: skip
    result = _with_metrics(result)
    write_json(done, result)
    return result


def _with_metrics(result: dict) -> dict:
    """The run's metrics, computed from its per-pair scores (with their ``mix``)."""
    result = {**result, "scores": with_mix(result["scores"])}
    result.update(
        metrics=evaluate_scores(result["scores"]), dev_metrics=dev_metrics(result["scores"])
    )
    if "teacher_scores" in result:
        result["teacher_scores"] = with_mix(result["teacher_scores"])
        result["teacher_metrics"] = evaluate_scores(result["teacher_scores"])
    return result


def _read_back(done: Path) -> dict:
    """A finished run's result, its metrics recomputed from its scores: a run finished before
    the ``mix`` mode existed gains it, so every row of a report has the same columns."""
    import json

    return {**_with_metrics(json.loads(done.read_text())), "read_back": True}


def run_ladder(
    benchmark: str,
    profile_name: str,
    *,
    seeds: int,
    out_dir: Path,
    overrides: list[str] | None = None,
    rows: list[str] | None = None,
    progress: bool = True,
    finished_only: bool = False,
    only_seeds: list[int] | None = None,
) -> list[dict]:
    """Run every row × seed (skipping finished ones); returns the per-run results, each with
    ``teacher_kept``: which model its seed's teacher run kept (``teacher.workflow.kept_model``).

    ``finished_only`` runs nothing: it reads back the runs finished so far (a ladder
    still running elsewhere, or one stopped part-way) so a report can be written.
    ``only_seeds`` runs (or reads back) those seeds of ``range(seeds)`` alone: one part of a
    ladder run as several processes side by side sharing ``out_dir`` (on one GPU, say).
    """
    from flipkd.recipes.pipeline import ensure_teacher, load_splits
    from flipkd.teacher.workflow import kept_model

    profile, chosen, picked = _selection(profile_name, rows, seeds, only_seeds)
    process_commit()  # the code this process runs, before any run (they record it)
    results = []
    if finished_only:
        return _finished(profile, benchmark, chosen, picked, out_dir, overrides or [])
    for seed in picked:
        base = build_config(profile, benchmark, "fip", seed, overrides or [])
        teacher_dir = _teacher_dir(base, out_dir)
        cfgs = {row: build_config(profile, benchmark, row, seed, overrides or []) for row in chosen}
        todo = [row for row, cfg in cfgs.items() if not _result_path(cfg, row, out_dir).is_file()]
        splits = cache = None
        # a seed whose rows all finished needs neither its data nor its teacher, and the
        # zero-shot row reads no teacher
        readers = [row for row in todo if ROWS[row][0] not in NO_TEACHER]
        if todo:
            splits = load_splits(base)
        if readers:
            if is_imported(teacher_dir):
                log.warning(
                    "seed %d: its teacher %s was imported as records, without weights; "
                    "training it again for rows %s", seed, teacher_dir, ", ".join(readers),
                )  # fmt: skip
                shutil.rmtree(teacher_dir)
            teacher_dir, cache = ensure_teacher(base, teacher_dir, splits, progress)
        teacher = kept_model(teacher_dir) if teacher_dir.is_dir() else None
        for row, cfg in cfgs.items():
            result = run_row(cfg, row, splits, cache, out_dir, progress)
            results.append({**result, "teacher_kept": teacher})
    return results


def _selection(
    profile_name: str, rows: list[str] | None, seeds: int, only_seeds: list[int] | None
) -> tuple[Profile, list[str], list[int]]:
    """The profile, its rows to run and the seeds to run, checked before anything runs."""
    if profile_name not in PROFILES:
        raise ConfigError(f"unknown profile {profile_name!r}; choose one of {', '.join(PROFILES)}")
    profile = PROFILES[profile_name]
    chosen = rows or list(profile.rows)
    unknown = [r for r in chosen if r not in ROWS]
    if unknown:
        raise ConfigError(f"unknown rows {unknown}; rows are {', '.join(ROWS)}")
    outside = sorted({s for s in only_seeds or [] if not 0 <= s < seeds})
    if outside:
        raise ConfigError(f"seeds {outside} are outside 0..{seeds - 1} (--seeds {seeds})")
    picked = sorted(set(only_seeds)) if only_seeds else list(range(seeds))
    return profile, chosen, picked


def _teacher_dir(base: FlipkdConfig, out_dir: Path) -> Path:
    """The teacher run of ``base``: ``teacher.run`` when given, else the ladder's own, named
    by the teacher's seed (seeds whose configs fix ``teacher.seed`` share one)."""
    if base.teacher.run:
        return Path(base.teacher.run)
    return out_dir / "teachers" / f"s{base.teacher.seed}-{_teacher_key(base)}"


def _finished(
    profile: Profile, benchmark: str, rows: list[str], seeds: list[int], out_dir: Path, overrides
) -> list[dict]:
    from flipkd.teacher.workflow import kept_model

    results = []
    for seed in seeds:
        base = build_config(profile, benchmark, "fip", seed, overrides)
        teacher_dir = _teacher_dir(base, out_dir)
        teacher = kept_model(teacher_dir) if teacher_dir.is_dir() else None
        for row in rows:
            done = _result_path(
                build_config(profile, benchmark, row, seed, overrides), row, out_dir
            )
            if done.is_file():
                results.append({**_read_back(done), "teacher_kept": teacher})
    if not results:
        raise ConfigError(f"no finished runs of this ladder under {out_dir}")
    return results
