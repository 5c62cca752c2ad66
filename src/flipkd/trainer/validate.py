"""Checks that fail before the first step, with a message that says what to change."""

from __future__ import annotations

import json
from pathlib import Path

from flipkd.config import FlipkdConfig, config_hash
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


def validate_setup(
    cfg: FlipkdConfig, train_pairs: list, cache, run_dir: Path, resume: bool
) -> None:
    """Raise ConfigError/CacheError for a setup that cannot work."""
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
    uses_inbatch = lc.dist != "none" or lc.contrastive in ("infonce", "arccse", "kdmcse", "mcl")
    if uses_inbatch and tc.batch_size < 2:
        raise ConfigError(
            "train.batch_size must be at least 2 when loss.dist or an in-batch contrastive loss "
            "is on (a batch of 1 has no in-batch negatives)"
        )
    if cache is None:
        raise ConfigError("no teacher cache: build one with `flipkd teacher cache`")
    cache.require([t for r in train_pairs for t in (r.text_a, r.text_b)])
    _check_resume(cfg, Path(run_dir), resume)
