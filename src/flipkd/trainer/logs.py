"""Step logs through accelerate's trackers: a JSONL file (always) and TensorBoard (when installed).

The JSONL file is a tracker of its own (:class:`JsonlTracker`), so every line the
run writes goes through ``Accelerator.log`` on the main process, next to
TensorBoard and whatever other tracker accelerate knows (``train.report_to``).
Values are logged as ``"{kind}/{name}"`` (``train/loss``, ``dev/gen_roc_auc``);
the JSONL line keeps them flat: ``{"kind": "train", "step": 10, "loss": ...}``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

from accelerate import Accelerator
from accelerate.tracking import GeneralTracker

log = logging.getLogger(__name__)

JSONL = "train.jsonl"
TENSORBOARD_DIR = "tb"  # logs/tb, as before the move to trackers


class JsonlTracker(GeneralTracker):
    """One JSON object per ``log`` call, appended (a resumed run continues the file)."""

    name = "jsonl"
    requires_logging_directory = False
    main_process_only = True

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.fh = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in finish()

    @property
    def tracker(self):
        return self.fh

    def store_init_configuration(self, values: dict) -> None:
        """The resolved config is written next to the run (``config.yaml``); nothing here."""

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        kinds = {key.split("/", 1)[0] for key in values}
        kind = kinds.pop() if len(kinds) == 1 else "train"
        flat = {key.split("/", 1)[1] if "/" in key else key: v for key, v in values.items()}
        self.fh.write(json.dumps({"kind": kind, "step": step, **flat}) + "\n")
        self.fh.flush()

    def finish(self) -> None:
        if self.fh is not None:
            self.fh.close()


def trackers(log_dir: Path) -> list:
    """``log_with`` for the Accelerator: the JSONL tracker, and TensorBoard if installed."""
    chosen: list = [JsonlTracker(Path(log_dir) / JSONL)]
    if importlib.util.find_spec("tensorboard") is not None:
        chosen.append("tensorboard")
    else:
        log.info("tensorboard is not installed; logging to %s only", Path(log_dir) / JSONL)
    return chosen


class StepLog:
    """Writes a step's values through the accelerator's trackers (main process only)."""

    def __init__(self, acc: Accelerator) -> None:
        self.acc = acc
        acc.init_trackers(TENSORBOARD_DIR)

    def write(self, step: int, values: dict[str, float], kind: str = "train") -> None:
        """Record ``values`` for ``step`` under ``kind`` (``train`` or ``dev``)."""
        self.acc.log({f"{kind}/{key}": value for key, value in values.items()}, step=step)

    def close(self) -> None:
        """Flush and close every tracker (the process group is left alone, unlike
        ``Accelerator.end_training``: a ladder trains several runs in one process)."""
        if self.acc.is_main_process:
            for tracker in self.acc.trackers:
                tracker.finish()
        self.acc.trackers = []
