"""Step logs: a JSONL file (always) and TensorBoard (when the package is installed)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class StepLog:
    """Appends one JSON object per step; mirrors scalars to TensorBoard."""

    def __init__(self, log_dir: Path, enabled: bool = True) -> None:
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        log_dir.mkdir(parents=True, exist_ok=True)
        self.path = log_dir / "train.jsonl"
        self.fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir / "tb"))
        except ImportError:
            log.info("tensorboard is not installed; logging to %s only", self.path)

    def write(self, step: int, values: dict[str, float], kind: str = "train") -> None:
        """Record ``values`` for ``step``."""
        if not self.enabled:
            return
        self.fh.write(json.dumps({"kind": kind, "step": step, **values}) + "\n")
        self.fh.flush()
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, int | float):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        """Flush and close."""
        if not self.enabled:
            return
        self.fh.close()
        if self.writer is not None:
            self.writer.close()
