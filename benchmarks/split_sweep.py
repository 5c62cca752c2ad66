"""Split a sweep spec into one spec per (variant, seed), to run them side by side on one machine.

    python benchmarks/split_sweep.py configs/sweeps/mqp_capacity.yaml --out /tmp/parts --teachers
    for s in 0 1 2; do flipkd sweep /tmp/parts/teacher-s$s.yaml --work W --out /tmp/t$s & done; wait
    for f in /tmp/parts/[!t]*.yaml; do flipkd sweep $f --work W --out /tmp/o-$(basename $f) & done
    wait; flipkd sweep configs/sweeps/mqp_capacity.yaml --work W    # reads every run back

Each part keeps the spec's name, profile, benchmark and overrides, so its runs land where the
whole sweep looks for them (``W/runs/<variant>/<row>-s<seed>-<config hash>/``) and the last
command trains nothing: it reads every run back and writes the table. ``--teachers`` also
writes one ``teacher-s<seed>.yaml`` per seed (the teacher row of the first variant): run those
first, one process per seed, so that parts of the same seed find their teacher trained instead
of training it at once. Used for ``results/dev/mqp/mqp-capacity/`` (15 parts on one GPU).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from flipkd.errors import run_script
from flipkd.reproduce.sweep import load_spec


def split(spec_path: Path, out: Path, teachers: bool) -> list[Path]:
    """Write the parts; returns their paths (teachers first)."""
    spec = load_spec(spec_path)  # a bad spec fails here, naming its file and field
    base = spec.model_dump()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if teachers:
        first = next(iter(spec.variants))
        for seed in spec.seed_list:
            part = {**base, "seeds": [seed], "rows": ["teacher"], "row_baseline": None,
                    "row_baseline_variant": None, "variant_rows": {},
                    "variants": {first: spec.variants[first]}}  # fmt: skip
            written.append(_write(out / f"teacher-s{seed}.yaml", part))
    for seed in spec.seed_list:
        for variant, extra in spec.variants.items():
            # one variant per part: the cross-variant comparison is the whole spec's table
            rows = spec.rows_of(variant)
            part = {**base, "seeds": [seed], "variants": {variant: extra}, "rows": rows,
                    "row_baseline": spec.row_baseline if spec.row_baseline in rows else None,
                    "row_baseline_variant": None, "variant_rows": {}}  # fmt: skip
            written.append(_write(out / f"{variant}-s{seed}.yaml", part))
    return written


def _write(path: Path, part: dict) -> Path:
    path.write_text(yaml.safe_dump(part, sort_keys=False), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="folder for the part specs")
    ap.add_argument("--teachers", action="store_true", help="also one teacher part per seed")
    args = ap.parse_args(argv)
    for path in split(args.spec, args.out, args.teachers):
        print(path)
    return 0


if __name__ == "__main__":
    run_script(lambda: main(sys.argv[1:]))
