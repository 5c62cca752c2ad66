"""L_gen over the whole vocabulary or over the two label words; Adam's beta2 from the config."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from flipkd.trainer import train_student
from tiny_run import make_cache, make_pairs, tiny_config, tiny_student


def test_label_vocab_loss_is_the_two_word_cross_entropy():
    cfg = tiny_config()
    student = tiny_student(cfg)
    pairs = [(p.text_a, p.text_b) for p in make_pairs(6)]
    labels = torch.tensor([1, 0, 1, 1, 0, 0])
    with torch.no_grad():
        full = student.gen_forward(pairs, labels)
        two = student.gen_forward(pairs, labels, vocab="labels")
    torch.testing.assert_close(full.label_logits, two.label_logits)
    want = F.cross_entropy(two.label_logits, (labels == 0).long())
    torch.testing.assert_close(two.loss, want)
    assert float(full.loss) > float(two.loss)  # the full softmax also pays for other tokens


def test_gen_vocab_and_beta2_reach_the_run(tmp_path):
    pairs = make_pairs()
    logs = {}
    for vocab, beta2 in (("full", 0.999), ("labels", 0.95)):
        cfg = tiny_config(steps=4, dropout=0.0, save_every=0, adam_beta2=beta2)
        cfg.loss.gen_vocab = vocab
        run = tmp_path / vocab
        train_student(
            cfg, run, cache=make_cache(tmp_path / f"c{vocab}", pairs), train_pairs=pairs,
            student=tiny_student(cfg), progress=False,
        )  # fmt: skip
        logs[vocab] = (run / "logs" / "train.jsonl").read_text()
        assert f"adam_beta2: {beta2}" in (run / "config.yaml").read_text()
    assert logs["full"] != logs["labels"]


def test_hash_ignores_new_options_at_their_neutral_value_and_diagnostics():
    from flipkd.config import FlipkdConfig, config_hash

    base = FlipkdConfig()
    same = FlipkdConfig()
    same.train.diagnose_every = 5
    assert config_hash(same) == config_hash(base)
    for section, key, value in (("train", "adam_beta2", 0.95), ("loss", "gen_vocab", "labels"),
                                ("loss", "alpha", 0.1)):  # fmt: skip
        other = FlipkdConfig()
        setattr(getattr(other, section), key, value)
        assert config_hash(other) != config_hash(base), key
