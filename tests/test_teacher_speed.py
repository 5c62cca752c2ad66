"""Teacher speed options: a frozen word-embedding table, length-grouped batches, their config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from flipkd.config import FlipkdConfig, config_hash, load_config
from flipkd.config.loader import HASH_EXCLUDE
from flipkd.config.schema import TeacherConfig
from flipkd.errors import ConfigError, ModelError
from flipkd.teacher import build_tiny_teacher, train_teacher
from flipkd.teacher.speed import (
    LengthGroupedBatches,
    StepClock,
    freeze_word_embeddings,
    row_lengths,
    text_columns,
)
from flipkd.teacher.tiny import toy_pairs, toy_words

torch.set_num_threads(1)
TABLE = "embeddings.word_embeddings.weight"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_teacher(tmp_path_factory.mktemp("tiny") / "model", toy_words(), seed=0)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    (path,) = model_dir.rglob("model.safetensors")
    return load_file(path)


def _train(tiny_model: Path, out: Path, **options) -> object:
    return train_teacher(
        toy_pairs(96, seed=0),
        toy_pairs(48, seed=1),
        TeacherConfig(epochs=3, batch_size=16, lr=1e-2, seed=0, **options),
        model_path=tiny_model,
        out_dir=out,
        progress=False,
    )


def test_frozen_table_is_unchanged_and_the_rest_trains(tiny_model: Path, tmp_path: Path) -> None:
    base = _weights(tiny_model)
    run = _train(tiny_model, tmp_path / "frozen", freeze_embeddings=True)
    assert (
        run.finetuned
        and run.history[-1]["eval_dev_cosine_ap"] > run.history[0]["eval_dev_cosine_ap"]
    )
    tuned = _weights(run.model_dir)
    assert torch.equal(tuned[TABLE], base[TABLE])
    changed = [k for k in base if k != TABLE and not torch.equal(tuned[k], base[k])]
    assert any("encoder.layer.0." in k for k in changed) and any("layer.1." in k for k in changed)
    metrics = json.loads((tmp_path / "frozen" / "metrics.json").read_text())
    assert metrics["frozen_parameters"] == base[TABLE].numel()
    assert metrics["step_seconds"] > 0 and metrics["step_pairs_per_second"] > 0
    assert json.loads((tmp_path / "frozen" / "run.json").read_text())["args"]["freeze_embeddings"]
    # Without the option the same training moves the table.
    plain = _train(tiny_model, tmp_path / "plain")
    assert not torch.equal(_weights(plain.model_dir)[TABLE], base[TABLE])


def test_freeze_counts_the_table_and_refuses_a_model_without_one() -> None:
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=1, intermediate_size=32))  # fmt: skip
    assert freeze_word_embeddings(torch.nn.ModuleList([bert])) == 50 * 16
    assert not bert.get_input_embeddings().weight.requires_grad
    assert bert.encoder.layer[0].attention.self.query.weight.requires_grad
    with pytest.raises(ModelError, match="no word-embedding table"):
        freeze_word_embeddings(torch.nn.Linear(2, 2))


def _tokenizer(tiny_model: Path):
    from flipkd.teacher.encoder import TeacherSource, load_encoder

    return load_encoder(TeacherSource("m", tiny_model)).tokenizer


def test_length_grouped_batches_cover_the_epoch_with_less_padding(tiny_model: Path) -> None:
    from datasets import Dataset

    gen = torch.Generator().manual_seed(0)
    n_words = torch.randint(1, 40, (640, 2), generator=gen).tolist()
    texts = [[" ".join(["fever0"] * k) for k in row] for row in n_words]
    columns = {"sentence1": [a for a, _ in texts], "sentence2": [b for _, b in texts]}
    data = Dataset.from_dict({**columns, "label": [1.0] * 640})
    build = LengthGroupedBatches(_tokenizer(tiny_model), "", 64)
    batches = list(build(data, 32, False, ["label"], generator=torch.Generator().manual_seed(1)))
    assert sorted(i for b in batches for i in b) == list(range(640))
    assert all(len(b) == 32 for b in batches)
    lengths = [max(a, b) + 2 for a, b in n_words]  # [CLS] ... [SEP]

    def padding(bs: list[list[int]]) -> float:
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in bs)

    shuffled = torch.randperm(640, generator=torch.Generator().manual_seed(2)).tolist()
    assert padding(batches) < 0.3 * padding([shuffled[k : k + 32] for k in range(0, 640, 32)])
    again = build(data, 32, False, ["label"], generator=torch.Generator().manual_seed(1))
    assert list(again) == batches  # seeded


def test_row_lengths_take_the_longest_text(tiny_model: Path) -> None:
    from datasets import Dataset

    tok = _tokenizer(tiny_model)
    assert row_lengths(tok, [["fever0"], ["fever1 fever2 fever3"]], "", 64) == [5]
    assert row_lengths(tok, [["fever0 " * 40], ["x"]], "", 16) == [16]
    data = Dataset.from_dict({"a": ["x"], "b": ["y z"], "label": [0.0], "n": [3]})
    assert text_columns(data, ["label"]) == [["x"], ["y z"]]
    with pytest.raises(ValueError, match="no text columns"):
        row_lengths(tok, [], "", 16)


def test_grouped_training_runs_and_mnrl_refuses_it(tiny_model: Path, tmp_path: Path) -> None:
    run = _train(tiny_model, tmp_path / "grouped", group_by_length=True, freeze_embeddings=True)
    assert run.finetuned and (run.model_dir / "modules.json").is_file()
    with pytest.raises(ValidationError, match="group_by_length"):
        TeacherConfig(loss="mnrl", group_by_length=True)
    unchecked = TeacherConfig(loss="mnrl").model_copy(update={"group_by_length": True})
    with pytest.raises(ConfigError, match="group_by_length"):
        train_teacher(toy_pairs(8), toy_pairs(8, seed=1), unchecked, model_path=tiny_model,
                      out_dir=tmp_path / "mnrl")  # fmt: skip


def test_step_clock_counts_only_inside_steps() -> None:
    clock = StepClock()
    clock.on_step_end(None, None, None)  # no open step: ignored
    clock.on_step_begin(None, None, None)
    clock.on_step_end(None, None, None)
    assert clock.steps == 1 and clock.seconds >= 0 and clock.cpu_seconds >= 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["teacher.freeze_embeddings=maybe"], "teacher.freeze_embeddings"),
        (["teacher.group_by_length=[1]"], "teacher.group_by_length"),
        (["teacher.loss=mnrl", "teacher.group_by_length=true"], "group_by_length"),
    ],
)
def test_bad_speed_options_name_the_field(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_speed_options_are_hash_neutral_at_their_defaults() -> None:
    base = FlipkdConfig()
    assert not base.teacher.freeze_embeddings and not base.teacher.group_by_length
    new_fields = {"teacher": {"freeze_embeddings", "group_by_length"}}
    # The same hash as a config without the fields (what the runs kept before them had).
    assert config_hash(base) == config_hash(base, exclude={**HASH_EXCLUDE, **new_fields})
    for key in ("freeze_embeddings", "group_by_length"):
        on = load_config(None, [f"teacher.{key}=true"])
        assert config_hash(on) != config_hash(base), key
        assert config_hash(load_config(None, [f"teacher.{key}=false"])) == config_hash(base)
