"""Figures (matplotlib, PNG): cosine distributions, A-tap projection, training curves."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COSINE_ROWS = ("teacher", "sft", "fip")
CURVE_TERMS = ("loss", "gen", "label_rank", "contrast", "dist", "tap_rank")


def _first_seed(results: list[dict], row: str) -> dict | None:
    runs = sorted((r for r in results if r["row"] == row), key=lambda r: r["seed"])
    return runs[0] if runs else None


def cosine_distributions(results: list[dict], out: Path) -> Path | None:
    """Rep-mode test cosines, positives vs negatives: teacher, sft, fip (the paper's Fig. 5)."""
    rows = [(n, r) for n in COSINE_ROWS if (r := _first_seed(results, n))]
    if not rows:
        return None
    fig, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 3.2), squeeze=False)
    for ax, (name, run) in zip(axes[0], rows, strict=True):
        test = run["scores"]["test"]
        s, y = np.array(test["rep"]), np.array(test["labels"])
        bins = np.linspace(min(s.min(), -0.1), max(s.max(), 1.0), 30)
        ax.hist(s[y == 1], bins=bins, alpha=0.6, label="positive", color="tab:green")
        ax.hist(s[y == 0], bins=bins, alpha=0.6, label="negative", color="tab:red")
        ax.set_title(name)
        ax.set_xlabel("cosine")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def projection(results: list[dict], out: Path) -> Path | None:
    """PCA of A-tap pair features (a ⊙ b) on test pairs, coloured by label, sft vs fip."""
    from sklearn.decomposition import PCA

    rows = [(n, r) for n in ("zero-shot", "sft", "fip") if (r := _first_seed(results, n))]
    rows = [(n, r) for n, r in rows if r["scores"]["test"].get("pair_features")]
    if not rows:
        return None
    fig, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 3.4), squeeze=False)
    for ax, (name, run) in zip(axes[0], rows, strict=True):
        feats = np.array(run["scores"]["test"]["pair_features"])
        y = np.array(run["scores"]["test"]["labels"])[: len(feats)]
        xy = PCA(n_components=2, random_state=0).fit_transform(feats)
        for label, color in ((0, "tab:red"), (1, "tab:green")):
            ax.scatter(*xy[y == label].T, s=8, alpha=0.6, c=color, label=f"label {label}")
        ax.set_title(f"{name}: A-tap a*b, PCA")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def training_curves(run_dirs: dict[str, Path], out: Path) -> Path | None:
    """Loss terms per step from each run's ``logs/train.jsonl``."""
    logs = {}
    for name, run_dir in run_dirs.items():
        path = run_dir / "logs" / "train.jsonl"
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            logs[name] = [r for r in rows if r.get("kind") == "train"]
    if not logs:
        return None
    terms = [t for t in CURVE_TERMS if any(t in r for rows in logs.values() for r in rows)]
    fig, axes = plt.subplots(1, len(terms), figsize=(3.6 * len(terms), 3), squeeze=False)
    for ax, term in zip(axes[0], terms, strict=True):
        for name, rows in logs.items():
            pts = [(r["step"], r[term]) for r in rows if term in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=name)
        ax.set_title(term)
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
