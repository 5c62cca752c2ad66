"""Is the FAQ index's embedding space what holds retrieval back? Hubness, anisotropy, and
post-processing fitted on the FAQ entries alone.

    python benchmarks/index_geometry.py MODEL --faq FAQ --queries Q --out results/faq/dev/geometry_X

Encodes the FAQ's questions and the labelled queries once with MODEL's index encoder (a
student's A-tap through the ``flipkd serve`` loader, or a teacher), as ``flipkd faq eval``
does, then reports

* the space: mean cosine of random entry pairs (anisotropy), effective rank of the entries'
  vectors (exp of the entropy of their normalised singular values), hubness (skewness of how
  often each entry is in a query's top 10; the share of queries whose top 1 is one of the
  1% most frequent top-1 entries);
* top-1 / top-5 / MRR@10 when the cosine is taken after a transform fitted on the **entries
  only** (what a server knows when it builds the index):

  - ``raw``: the served index (unit vectors, cosine);
  - ``centre``: the entries' mean subtracted from entries and queries;
  - ``whiten``: centred, then PCA-whitened with the entries' covariance shrunk towards its
    mean eigenvalue (``--shrink``);
  - ``csls``: cosine minus half the entry's mean cosine to its ``--csls-k`` nearest other
    entries (a hub's score is lowered; cross-domain similarity local scaling with the
    query-side term dropped, as it does not change a query's order);

  - ``pca-D`` (for each D of ``--pca`` below the vectors' dimension): centred, then projected
    on the entries' first D principal components, i.e. the space cut to D dimensions (what a
    D-dimensional representation could keep of this one, as far as variance tells);

  each against ``raw`` with a paired bootstrap interval over the queries.

Vectors are cached in ``--cache`` (keyed by model, FAQ, queries and precision) so that a
second look costs no encoding. Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import skew
from tqdm.auto import tqdm

from flipkd.bench.script import report_main
from flipkd.errors import ConfigError, run_script
from flipkd.evaluation.report import retrieval_row
from flipkd.evaluation.retrieval import paired_difference, rank_of, retrieval_metrics
from flipkd.provenance import provenance

CUTOFF = 10
HUB_SHARE = 0.01


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="student export or run, teacher run, or registered teacher")
    parser.add_argument("--loader", default="flipkd", help="as flipkd serve: 'module:function'")
    parser.add_argument("--faq", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--shrink", type=float, default=0.1, help="whitening shrinkage, 0-1")
    parser.add_argument("--csls-k", type=int, default=10)
    parser.add_argument("--pca", type=int, nargs="*", default=[], help="dimensions to cut to")
    parser.add_argument("--cache", type=Path, default=None, help="directory for the vectors")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")
    args = parser.parse_args(argv)
    if not 0 <= args.shrink <= 1:
        raise ConfigError(f"--shrink must lie in [0, 1], got {args.shrink}")
    if args.csls_k < 1:
        raise ConfigError(f"--csls-k must be at least 1, got {args.csls_k}")
    if any(d < 1 for d in args.pca):
        raise ConfigError(f"--pca dimensions must be at least 1, got {args.pca}")
    return args


def unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def fit_centre(entries: np.ndarray, shrink: float, k: int):
    mean = entries.mean(axis=0)
    return lambda x: x - mean


def fit_whiten(entries: np.ndarray, shrink: float, k: int):
    mean = entries.mean(axis=0)
    cov = np.cov(entries - mean, rowvar=False)
    values, vectors = np.linalg.eigh(cov)
    values = (1 - shrink) * np.clip(values, 0, None) + shrink * values.mean()
    project = vectors / np.sqrt(np.maximum(values, 1e-12))
    return lambda x: (x - mean) @ project


def pca_cut(entries: np.ndarray, dims: int):
    """Centre, then keep the entries' first ``dims`` principal components."""
    mean = entries.mean(axis=0)
    _, _, components = np.linalg.svd(entries - mean, full_matrices=False)
    return lambda x: (x - mean) @ components[:dims].T


def entry_hub_scores(entries: np.ndarray, k: int) -> np.ndarray:
    """Each entry's mean cosine to its ``k`` nearest other entries (unit rows)."""
    sims = entries @ entries.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(entries) - 1)
    return np.sort(sims, axis=1)[:, -k:].mean(axis=1)


def _after(fit: Callable) -> Callable:
    """The cosine after the vector transform ``fit(entries, shrink, k)`` returns."""

    def score(entries: np.ndarray, queries: np.ndarray, shrink: float, k: int) -> np.ndarray:
        transform = fit(entries, shrink, k)
        return unit(transform(queries)) @ unit(transform(entries)).T

    return score


def _csls(entries: np.ndarray, queries: np.ndarray, shrink: float, k: int) -> np.ndarray:
    return queries @ entries.T - 0.5 * entry_hub_scores(entries, k)[None, :]


# name -> scores(unit entries, unit queries, shrink, csls k): [queries, entries]
SCORES: dict[str, Callable] = {
    "raw": lambda entries, queries, shrink, k: queries @ entries.T,
    "centre": _after(fit_centre),
    "whiten": _after(fit_whiten),
    "csls": _csls,
}


def scores_for(name: str, entries: np.ndarray, queries: np.ndarray, shrink: float, k: int):
    """[queries, entries] scores under transform ``name`` (entries and queries unit rows)."""
    if name.startswith("pca-"):
        dims = int(name.removeprefix("pca-"))
        return _after(lambda e, shrink, k: pca_cut(e, dims))(entries, queries, shrink, k)
    return SCORES[name](entries, queries, shrink, k)


def ranks_from(scores: np.ndarray, entry_ids: list[str], gold: list[str]) -> list[int | None]:
    top = np.argsort(-scores, axis=1, kind="stable")[:, :CUTOFF]
    return [rank_of([entry_ids[j] for j in row], want) for row, want in zip(top, gold, strict=True)]


def space_stats(entries: np.ndarray, queries: np.ndarray, seed: int) -> dict[str, float]:
    """Anisotropy, effective rank and hubness of the raw (unit) vectors."""
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(entries), (2, 20_000))
    keep = i != j
    mean_cos = float(np.mean(np.sum(entries[i[keep]] * entries[j[keep]], axis=1)))
    singular = np.linalg.svd(entries, compute_uv=False)
    p = singular / singular.sum()
    eff_rank = float(np.exp(-np.sum(p * np.log(np.maximum(p, 1e-30)))))
    sims = queries @ entries.T
    top10 = np.argsort(-sims, axis=1)[:, :CUTOFF]
    n10 = np.bincount(top10.ravel(), minlength=len(entries))
    n1 = np.bincount(top10[:, 0], minlength=len(entries))
    hubs = np.argsort(-n1)[: max(1, int(round(HUB_SHARE * len(entries))))]
    return {
        "dim": int(entries.shape[1]),
        "mean_cos_random_entries": mean_cos,
        "effective_rank": eff_rank,
        "n10_skewness": float(skew(n10)) if n10.std() > 0 else 0.0,  # constant: no hubs
        "top1_share_of_top1pct_entries": float(n1[hubs].sum() / len(queries)),
        "entries_never_in_a_top10": int((n10 == 0).sum()),
    }


def _cache_file(args: argparse.Namespace) -> Path | None:
    if args.cache is None:
        return None
    key = "|".join([str(Path(args.model).resolve()) if Path(args.model).exists() else args.model,
                    *(hashlib.sha256(p.read_bytes()).hexdigest() for p in (args.faq, args.queries)),
                    args.precision, args.loader])  # fmt: skip
    return args.cache / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def _encode(encoder, texts: list[str], what: str, batch: int = 32) -> np.ndarray:
    rows = []
    for i in tqdm(range(0, len(texts), batch), desc=f"encode {what}"):
        rows.append(np.asarray(encoder.encode(texts[i : i + batch]), dtype=np.float32))
    return np.concatenate(rows)


def vectors(args: argparse.Namespace, entries, queries) -> tuple[np.ndarray, np.ndarray, str]:
    """Entry and query vectors (unit rows), from the cache when there; and the model's name."""
    cache = _cache_file(args)
    if cache is not None and cache.exists():
        saved = np.load(cache)
        return unit(saved["entries"]), unit(saved["queries"]), str(saved["name"])
    from flipkd.cli.faq_cmd import load_model

    encoder = load_model(args.model, args.loader, args.precision).encoder
    e = _encode(encoder, [x.question for x in entries], "entries")
    q = _encode(encoder, [x.query for x in queries], "queries")
    if not (np.isfinite(e).all() and np.isfinite(q).all()):
        raise ConfigError(f"{args.model}: non-finite embeddings")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, entries=e, queries=q, name=encoder.name)
    return unit(e), unit(q), encoder.name


def run(args: argparse.Namespace) -> dict:
    from flipkd.serve.faq import load_faq
    from flipkd.serve.queries import load_queries

    entries = load_faq(args.faq)
    entry_ids = [e.id for e in entries]
    queries = load_queries(args.queries, entry_ids, str(args.faq))
    gold = [q.id for q in queries]
    e, q, name = vectors(args, entries, queries)
    raw = ranks_from(q @ e.T, entry_ids, gold)
    table = {}
    cuts = [f"pca-{d}" for d in sorted(set(args.pca)) if d < e.shape[1]]
    for transform in [*SCORES, *cuts]:
        ranks = ranks_from(scores_for(transform, e, q, args.shrink, args.csls_k), entry_ids, gold)
        diff = paired_difference(raw, ranks, args.resamples, args.seed)
        table[transform] = {
            **retrieval_metrics(ranks),
            "top1_vs_raw": diff["top1"]["diff"],
            "top1_ci": diff["top1"]["ci"],
            "mrr_vs_raw": diff["mrr@10"]["diff"],
            "mrr_ci": diff["mrr@10"]["ci"],
        }
    return {
        **provenance(["python", "benchmarks/index_geometry.py", *_argv(args)]),
        "model": name,
        "faq": {"path": str(args.faq), "entries": len(entries)},
        "queries": {"path": str(args.queries), "n": len(queries)},
        "space": space_stats(e, q, args.seed),
        "shrink": args.shrink,
        "csls_k": args.csls_k,
        "resamples": args.resamples,
        "transforms": table,
    }


def _argv(args: argparse.Namespace) -> list[str]:
    out = [args.model, "--faq", str(args.faq), "--queries", str(args.queries),
           "--precision", args.precision, "--shrink", str(args.shrink),
           "--csls-k", str(args.csls_k), "--out", str(args.out)]  # fmt: skip
    out += ["--pca", *map(str, args.pca)] if args.pca else []
    return out + (["--loader", args.loader] if args.loader != "flipkd" else [])


def markdown(report: dict) -> str:
    space = report["space"]
    lines = [
        "# The index's embedding space",
        "",
        f"Command: `{report['command']}`",
        "",
        f"{report['model']} on `{report['faq']['path']}` ({report['faq']['entries']} entries, "
        f"{report['queries']['n']} queries). Every transform is fitted on the FAQ entries "
        f"only (whitening shrinkage {report['shrink']:g}, CSLS k = {report['csls_k']}); "
        f"differences paired over the queries, {report['resamples']} resamples.",
        "",
        f"- dimensions {space['dim']}, effective rank of the entries {space['effective_rank']:.1f}",
        f"- mean cosine of random entry pairs {space['mean_cos_random_entries']:.3f}",
        f"- hubness: skewness of top-10 occurrences {space['n10_skewness']:.2f}; the 1% most "
        f"frequent top-1 entries are top 1 for {space['top1_share_of_top1pct_entries']:.1%} "
        f"of queries; {space['entries_never_in_a_top10']} entries never in a top 10",
        "",
        "| transform | top-1 | top-5 | MRR@10 | top-1 − raw [95%] | MRR@10 − raw [95%] |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in report["transforms"].items():
        diffs = [(row["top1_vs_raw"], row["top1_ci"]), (row["mrr_vs_raw"], row["mrr_ci"])]
        lines.append(retrieval_row(name, row, diffs))
    return "\n".join([*lines, ""])


main = report_main(parse_args, run, markdown)


if __name__ == "__main__":
    run_script(main)
