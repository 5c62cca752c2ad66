"""What the teacher's trainer shows when progress bars are off.

With ``disable_tqdm`` transformers' Trainer prints every log as a Python dict on stdout, and
sentence-transformers draws a "Computing widget examples" bar while it builds the model card.
``--no-progress`` asks for neither: :class:`LogLines` turns each log into one line of the
``flipkd.teacher`` logger, and :func:`set_card_examples` fills the model card's examples from
the first dev pairs (the same every run), so the library has nothing to sample or draw.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

log = logging.getLogger("flipkd.teacher")

# the Trainer's bookkeeping, not a measurement of the model
_SKIP = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time")
CARD_EXAMPLES = 3


def _short(key: str) -> str:
    for prefix in ("eval_dev_", "eval_"):
        if key.startswith(prefix):
            return ("dev " if prefix == "eval_dev_" else "dev_") + key[len(prefix) :]
    return key


def format_log(logs: dict[str, Any], step: int, max_steps: int) -> str:
    """``teacher step 40/62: loss 4.76, dev cosine_spearman 0.3592`` (floats to 4 digits);
    ``teacher before training: ...`` for the dev evaluation before the first step (the trainer
    knows no step count yet)."""
    parts = [
        f"{_short(key)} {value:.4g}" if isinstance(value, float) else f"{_short(key)} {value}"
        for key, value in logs.items()
        if key != "epoch" and not key.endswith(_SKIP)
    ]
    where = f"step {step}/{max_steps}" if max_steps else "before training"
    return f"teacher {where}: " + ", ".join(parts)


class LogLines(TrainerCallback):
    """Each Trainer log (training loss, dev evaluation) as one INFO line."""

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any
    ) -> None:
        if logs:
            log.info(format_log(logs, state.global_step, state.max_steps))


def log_lines_instead_of_prints(trainer: Any) -> None:
    """Swap the Trainer's dict printer (used when its bars are off) for :class:`LogLines`."""
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(LogLines())


def set_card_examples(model: Any, pairs: Sequence[Any]) -> None:
    """The model card's widget examples: the first dev pairs, as sentence-similarity examples.

    sentence-transformers only samples its own (with a progress bar and the global ``random``)
    when the card has none."""
    chosen = [p for p in pairs if p.text_a and p.text_b][:CARD_EXAMPLES]
    if not chosen:
        return
    card = model.model_card_data
    card.widget = [{"source_sentence": p.text_a, "sentences": [p.text_b]} for p in chosen]
    card.usage_examples = [chosen[0].text_a, *(p.text_b for p in chosen)]
