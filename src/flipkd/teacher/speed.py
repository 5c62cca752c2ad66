"""Teacher training options that make a step cheaper, and a clock for the steps themselves.

* :func:`freeze_word_embeddings` — ``requires_grad=False`` on the transformer's word-embedding
  table. multilingual-e5-small keeps 96M of its 118M parameters there (250k rows × 384);
  the trainer's optimizer only takes trainable parameters, so a frozen table has no gradient,
  no clipping pass and no AdamW state, and the step no longer touches 96M floats three times.
* :class:`LengthGroupedBatches` — a ``batch_sampler`` for ``SentenceTransformerTrainingArguments``
  that orders each epoch with transformers' ``LengthGroupedSampler`` (random mega-batches of
  50 batches, sorted by length inside), so a batch's texts are padded to similar lengths.
* :class:`StepClock` — a trainer callback summing the time from each step's start to its end
  (forward, backward, clipping, optimizer), leaving out evaluation and checkpoint saving.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedModel, TrainerCallback

from flipkd.errors import ModelError


def freeze_word_embeddings(model: Any) -> int:
    """Freeze the word-embedding table of every transformers model inside ``model``.

    Returns:
        The number of parameters in the frozen tables.

    Raises:
        ModelError: ``model`` holds no transformers model with input embeddings.
    """
    tables = {
        id(t.weight): t.weight
        for m in model.modules()
        if isinstance(m, PreTrainedModel) and (t := m.get_input_embeddings()) is not None
    }
    if not tables:
        raise ModelError("teacher.freeze_embeddings: the teacher has no word-embedding table")
    for weight in tables.values():
        weight.requires_grad_(False)
    return sum(w.numel() for w in tables.values())


def row_lengths(
    tokenizer: Any, columns: Sequence[Sequence[str]], prefix: str, max_length: int
) -> list[int]:
    """Per row, the token count of its longest text (with the prefix and special tokens)."""
    if not columns:
        raise ValueError("no text columns to measure")
    counts = [
        [len(ids) for ids in tokenizer([prefix + t for t in col], truncation=True,
                                       max_length=max_length)["input_ids"]]
        for col in columns
    ]  # fmt: skip
    return [max(row) for row in zip(*counts, strict=True)]


def text_columns(dataset: Any, label_columns: Sequence[str] = ()) -> list[list[str]]:
    """The string columns of a ``datasets.Dataset`` (labels and other columns left out)."""
    if len(dataset) == 0:
        return []
    first = dataset[0]
    names = [c for c in dataset.column_names if c not in label_columns]
    return [dataset[c] for c in names if isinstance(first[c], str)]


@dataclass
class LengthGroupedBatches:
    """A ``batch_sampler`` for sentence-transformers' trainer: batches of similar length.

    For whichever dataset the trainer passes (train, and eval for the eval loss), each row's
    length is the token count of its longest text; transformers' ``LengthGroupedSampler``
    orders the rows with the trainer's seeded generator, and sentence-transformers'
    ``DefaultBatchSampler`` cuts the order into batches. A module-level class, so the
    trainer can pickle its arguments with the checkpoints.
    """

    tokenizer: Any
    prefix: str
    max_length: int

    def __call__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
    ) -> Any:
        from sentence_transformers.base.sampler import DefaultBatchSampler
        from transformers.trainer_pt_utils import LengthGroupedSampler

        columns = text_columns(dataset, valid_label_columns or ())
        lengths = row_lengths(self.tokenizer, columns, self.prefix, self.max_length)
        order = LengthGroupedSampler(batch_size, lengths=lengths, generator=generator)
        return DefaultBatchSampler(
            order,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )


class StepClock(TrainerCallback):
    """Wall and process CPU seconds spent inside training steps (``on_step_begin`` to
    ``on_step_end``). CPU seconds count every thread of the process; on a shared machine they
    move less than wall seconds with the load from other jobs."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.steps = 0
        self._start: tuple[float, float] | None = None

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start[0]
            self.cpu_seconds += time.process_time() - self._start[1]
            self.steps += 1
            self._start = None
