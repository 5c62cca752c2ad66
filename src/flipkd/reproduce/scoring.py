"""Scores of a row on dev and test, and metrics with the threshold chosen on dev."""

from __future__ import annotations

from typing import Any

import numpy as np

from flipkd.evaluation import best_threshold, pair_metrics
from flipkd.mixing import MIX_WEIGHT_DEFAULT, mix_scores
from flipkd.modes import PAIR_MODES, metric_prefix

PLOT_PAIRS = 300
REPORTED = ("f1", "accuracy", "precision", "recall", "ap", "roc_auc", "spearman")


def _labels(pairs) -> list[int]:
    return [int(p.label) for p in pairs]


def teacher_scores(
    cache, splits: dict, split_names: tuple[str, ...] = ("dev", "test")
) -> dict[str, Any]:
    """Teacher cosine per pair (the same numbers stand for every mode)."""
    out: dict[str, Any] = {}
    for split in split_names:
        pairs = splits[split]
        sims = cache.pair_sim([p.text_a for p in pairs], [p.text_b for p in pairs]).tolist()
        out[split] = {"labels": _labels(pairs), "gen": sims, "rep": sims, "mix": sims}
    return out


def with_mix(scores: dict[str, Any], weight: float = MIX_WEIGHT_DEFAULT) -> dict[str, Any]:
    """``scores`` with a ``mix`` score per pair in every split that lacks one: the generated
    label and the A-tap cosine mixed (:func:`flipkd.mixing.mix_scores`), z-scaled on the dev
    split's pairs (the split the threshold comes from). Where the two modes are one score (a
    teacher's cosine stands for both) the mix is that score. Splits are not changed in place."""
    if "dev" not in scores:
        return scores
    dev = scores["dev"]
    reference = (dev["rep"], dev["gen"])

    def mixed(s: dict[str, Any]) -> list[float]:
        if s["gen"] == s["rep"]:
            return list(s["gen"])
        return mix_scores(s["rep"], s["gen"], weight, reference)

    return {split: s if "mix" in s else {**s, "mix": mixed(s)} for split, s in scores.items()}


def student_scores(
    student,
    splits: dict,
    progress: bool = False,
    split_names: tuple[str, ...] = ("dev", "test"),
    known_gen: dict[str, dict] | None = None,
) -> dict[str, Any]:
    """Student scores per pair in both modes (gen: P(yes); rep: A-tap cosine).

    Rep mode encodes each distinct text of a split once (MQP questions recur across
    pairs), then takes dot products; the test split also keeps the pair features
    (element-wise product of the two A-tap vectors) for the 2-D projection plot.
    ``known_gen`` (split → a finished run's ``{"labels", "gen"}`` for the same pairs, whose
    generated label this student's equals) is taken instead of scoring gen again. The
    ``mix`` of the two is added when dev is among the splits (:func:`with_mix`).
    """
    from flipkd.student import encode, score_pairs

    out: dict[str, Any] = {}
    for split in split_names:
        pairs = [(p.text_a, p.text_b) for p in splits[split]]
        out[split] = {"labels": _labels(splits[split])}
        known = (known_gen or {}).get(split)
        if known is not None and known["labels"] == out[split]["labels"]:
            out[split]["gen"] = list(known["gen"])
        else:
            out[split]["gen"] = score_pairs(student, pairs, mode="gen", progress=progress).tolist()
        texts = list(dict.fromkeys(t for pair in pairs for t in pair))
        emb = encode(student, texts, progress=progress)
        row = {t: i for i, t in enumerate(texts)}
        emb_a = emb[[row[a] for a, _ in pairs]]
        emb_b = emb[[row[b] for _, b in pairs]]
        out[split]["rep"] = (emb_a * emb_b).sum(-1).tolist()
        if split == "test":
            out[split]["pair_features"] = np.round(emb_a * emb_b, 5)[:PLOT_PAIRS].tolist()
    return with_mix(out)


def _modes(scores: dict[str, Any]) -> list[str]:
    """The modes scored in every split (results written before ``mix`` existed lack it)."""
    return [m for m in PAIR_MODES if all(m in s for s in scores.values())]


def evaluate_scores(scores: dict[str, Any]) -> dict[str, float]:
    """Test metrics per mode at the dev-chosen (F1) threshold; rep and mix metrics get a
    ``rep_`` / ``mix_`` prefix."""
    out: dict[str, float] = {}
    for mode in _modes(scores):
        dev_s, dev_y = np.array(scores["dev"][mode]), np.array(scores["dev"]["labels"])
        test_s, test_y = np.array(scores["test"][mode]), np.array(scores["test"]["labels"])
        threshold = best_threshold(dev_s, dev_y, "f1")
        metrics = pair_metrics(test_s, test_y, threshold)
        prefix = metric_prefix(mode)
        out.update({f"{prefix}{k}": float(metrics[k]) for k in (*REPORTED, "threshold")})
    return out


def dev_metrics(scores: dict[str, Any]) -> dict[str, float]:
    """Threshold-free dev metrics per mode (what choosing a default may look at)."""
    out: dict[str, float] = {}
    for mode in _modes({"dev": scores["dev"]}):
        s, y = np.array(scores["dev"][mode]), np.array(scores["dev"]["labels"])
        metrics = pair_metrics(s, y, best_threshold(s, y, "f1"))
        prefix = metric_prefix(mode)
        out.update({f"{prefix}{k}": float(metrics[k]) for k in ("roc_auc", "ap", "f1", "spearman")})
    return out
