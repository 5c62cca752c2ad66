"""Pool several ``rerank_fusion.py`` reports into one choice of ``rerank_weight``.

    python benchmarks/fusion_pool.py results/faq/dev/fusion_A.json results/faq/dev/fusion_B.json \
        --out results/faq/dev/fusion_pooled

Each report is one student on one FAQ (``rerank_fusion.py``'s top-1 per weight w, as the
difference from the generated label alone (w = 1) and from the index's cosine order (w = 0)).
For every w the reports share, this writes each student's two differences, their mean per FAQ
(reports whose queries file has the same content hash are one FAQ), and the mean over FAQs of
those means, so that a FAQ with more students does not count more. The pick:

    the w with the highest mean-over-FAQs gain over the label alone, among the weights under
    which no student's re-ranked top-1 is below its own index's (on the point estimate)

(the first such w in ascending order on a tie). A default chosen this way never serves a
re-ranking that the dev FAQs say is worse than not re-ranking. Writes ``OUT.json`` and
``OUT.md``; reads dev reports only by convention (the script cannot tell dev from test: name
the files).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flipkd.bench.script import report_main
from flipkd.errors import ConfigError, run_script
from flipkd.provenance import provenance


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", type=Path, nargs="+", help="rerank_fusion.py OUT.json files")
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")
    return parser.parse_args(argv)


def read_fusion(file: Path) -> dict:
    """A ``rerank_fusion.py`` report, or a one-line error naming the file."""
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not a rerank_fusion.py JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("weights"), dict) or not doc["weights"]:
        raise ConfigError(f"{file}: not a rerank_fusion.py JSON (no weights)")
    if not isinstance(doc.get("queries"), dict) or "hash" not in doc["queries"]:
        raise ConfigError(f"{file}: not a rerank_fusion.py JSON (no queries hash)")
    return doc


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def run(args: argparse.Namespace) -> dict:
    if len(set(args.files)) != len(args.files):
        raise ConfigError("a report is given twice: each student counts once")
    docs = {file: read_fusion(file) for file in args.files}
    shared = set.intersection(*(set(d["weights"]) for d in docs.values()))
    if not shared:
        raise ConfigError(
            "the reports share no weight w: run rerank_fusion.py with the same --weights"
        )
    weights = sorted(shared, key=float)
    faqs: dict[str, list[Path]] = {}
    for file, doc in docs.items():
        faqs.setdefault(doc["queries"]["hash"], []).append(file)
    table = {}
    for w in weights:
        rows = {f.stem.removeprefix("fusion_"): docs[f]["weights"][w] for f in args.files}
        per_faq = {h: _mean([docs[f]["weights"][w]["top1_vs_label_only"] for f in files])
                   for h, files in faqs.items()}  # fmt: skip
        table[w] = {
            "students": {name: {"top1": r["top1"], "vs_label_only": r["top1_vs_label_only"],
                                "vs_index": r["top1_vs_index"]} for name, r in rows.items()},
            "mean_vs_label_only_per_faq": per_faq,
            "mean_vs_label_only": _mean(list(per_faq.values())),
            "worst_vs_index": min(r["top1_vs_index"] for r in rows.values()),
        }  # fmt: skip
    allowed = [w for w in weights if table[w]["worst_vs_index"] >= 0]
    pick = max(allowed, key=lambda w: table[w]["mean_vs_label_only"]) if allowed else None
    return {
        **provenance(
            ["python", "benchmarks/fusion_pool.py", *map(str, args.files), "--out", str(args.out)]
        ),  # fmt: skip
        "files": [str(f) for f in args.files],
        "faqs": {
            h: {
                "queries": docs[files[0]]["queries"]["path"],
                "reports": [f.stem.removeprefix("fusion_") for f in files],
            }
            for h, files in faqs.items()
        },  # fmt: skip
        "weights": table,
        "pick": pick,
    }


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def markdown(report: dict) -> str:
    names = list(next(iter(report["weights"].values()))["students"])
    faqs = report["faqs"]
    lines = [
        "# One `rerank_weight` for several students and FAQs",
        "",
        f"Command: `{report['command']}`",
        "",
        "Top-1 of each student's re-ranking at w, in points: the difference from the generated "
        "label alone (w = 1) / from the index's cosine order (w = 0), read from each "
        "`rerank_fusion.py` report (its intervals are there). FAQs: "
        + "; ".join(f"`{f['queries']}` ({', '.join(f['reports'])})" for f in faqs.values())
        + ".",
        "",
        "| w | " + " | ".join(names) + " | mean over FAQs vs label | worst vs index |",
        "|---|" + "---|" * (len(names) + 2),
    ]
    for w, row in report["weights"].items():
        cells = [
            f"{_pts(s['vs_label_only'])} / {_pts(s['vs_index'])}" for s in row["students"].values()
        ]
        mark = " **(pick)**" if w == report["pick"] else ""
        means = f"{_pts(row['mean_vs_label_only'])} | {_pts(row['worst_vs_index'])}"
        lines.append(f"| {w}{mark} | " + " | ".join(cells) + f" | {means} |")
    pick = report["pick"]
    lines += [
        "",
        (f"Pick: **w = {pick}**, the highest mean gain over the label alone among the weights "
         "under which no student's re-ranking is below its own index."
         if pick is not None else
         "Pick: none; under every w some student's re-ranking is below its own index."),
        "",
    ]  # fmt: skip
    return "\n".join(lines)


main = report_main(parse_args, run, markdown)


if __name__ == "__main__":
    run_script(main)
