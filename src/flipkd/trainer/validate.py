"""Checks that fail before the first step, with a message that says what to change."""

from __future__ import annotations

import json
from pathlib import Path

from flipkd.config import FlipkdConfig, config_hash
from flipkd.config.schema import loss_problem
from flipkd.errors import ConfigError
from flipkd.trainer.checkpoint import latest_checkpoint


def _check_resume(cfg: FlipkdConfig, run_dir: Path, resume: bool) -> None:
    latest = latest_checkpoint(run_dir / "checkpoints")
    if resume:
        if latest is None:
            raise ConfigError(f"{run_dir}: --resume given but there is no complete checkpoint")
        made_with = json.loads((latest / "state.json").read_text())["config_hash"]
        if made_with != config_hash(cfg):
            raise ConfigError(
                f"{latest}: made with config {made_with}, this config is {config_hash(cfg)}; "
                "resume with the same config (see config.yaml there) or use a new run directory"
            )
    elif latest is not None:
        raise ConfigError(
            f"{run_dir}: already holds checkpoints; pass --resume to continue it, "
            "or choose another name/output_dir"
        )


def check_config(cfg: FlipkdConfig) -> None:
    """Checks of the config alone (no data, no model): raise :class:`ConfigError`.

    The schema makes them when a config is loaded; they are made again here for a config
    changed in code after loading (field assignments validate one section only).
    """
    from flipkd.student.prompt import resolve_prompt  # the template's slots, the words

    p = cfg.student.prompt
    resolve_prompt(p, cfg.data.benchmark)
    problem = loss_problem(cfg.loss, cfg.train)
    if problem:
        raise ConfigError(problem)


def check_data(cfg: FlipkdConfig, train_pairs: list) -> None:
    """Checks of the config against the training pairs: raise :class:`ConfigError`."""
    tc, lc = cfg.train, cfg.loss
    if len(train_pairs) < tc.batch_size:
        raise ConfigError(
            f"train.batch_size {tc.batch_size} is larger than the {len(train_pairs)} training pairs"
        )
    if lc.gen and lc.gen_weight > 0:
        unlabelled = sum(1 for r in train_pairs if r.label is None)
        if unlabelled:
            raise ConfigError(
                f"loss.gen is on but {unlabelled} training pairs have no 0/1 label "
                "(graded data): set loss.gen=false"
            )
        if lc.gen_balance:
            n_pos = sum(1 for r in train_pairs if r.label == 1)
            if n_pos in (0, len(train_pairs)):
                raise ConfigError(
                    f"loss.gen_balance weights the two classes, but the {len(train_pairs)} "
                    f"training pairs hold {n_pos} positives: set loss.gen_balance=0"
                )


def check_run_dir(cfg: FlipkdConfig, run_dir: Path, resume: bool) -> None:
    """The run directory can be created here and matches ``--resume``: raise ConfigError."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(
            f"{run_dir}: is a file (or a file is in its path), not a directory"
        ) from None
    except OSError as err:
        raise ConfigError(f"{run_dir}: cannot create the run directory ({err.strerror})") from None
    _check_resume(cfg, run_dir, resume)


def validate_setup(
    cfg: FlipkdConfig, train_pairs: list, cache, run_dir: Path, resume: bool
) -> None:
    """Raise ConfigError/CacheError for a setup that cannot work."""
    check_config(cfg)
    check_data(cfg, train_pairs)
    if cache is None:
        raise ConfigError("no teacher cache: build one with `flipkd teacher cache`")
    cache.require([t for r in train_pairs for t in (r.text_a, r.text_b)])
    _check_resume(cfg, Path(run_dir), resume)


def nonfinite_loss(step: int, values: dict, checkpoints: Path) -> ConfigError:
    """The error that stops a run whose loss became NaN or infinite at ``step`` (1-based)."""
    from flipkd.trainer.checkpoint import latest_checkpoint

    terms = ", ".join(
        f"{k} {values[k]:.4g}" for k in ("loss", "gen", "contrast", "dist") if k in values
    )
    last = latest_checkpoint(checkpoints)
    kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
    return ConfigError(
        f"step {step}: the loss is not finite ({terms}); training stopped, {kept}. "
        "Lower train.lr or the loss weights, or check the teacher scores"
    )
