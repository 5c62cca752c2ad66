"""Performance measurement: matmul peak, training and encode throughput, the ST + peft peer.

Public API::

    BenchSettings(students, benchmark=None, steps=8, warmup=3, threads=2, parts=PARTS,
                  overrides=[])
    run_bench(settings, command=None, say=log.info) -> dict       # each task in its own process
    finalize(results) -> dict                                     # ratios + targets
    write_perf(results, out_dir); write_train(results, out_dir)  # bench.json/train.json + README
    PassCost, trace_modules(model, run, head), pass_cost(trace, tap_a)   # useful-FLOP counting
    matmul_peak(sizes, repeats) -> dict
"""

from flipkd.bench.flops import PassCost, TracedModule, pass_cost, trace_modules
from flipkd.bench.peak import matmul_peak
from flipkd.bench.report import finalize, summary_lines, write_perf, write_train
from flipkd.bench.runner import PARTS, BenchSettings, run_bench

__all__ = [
    "PARTS",
    "BenchSettings",
    "PassCost",
    "TracedModule",
    "finalize",
    "matmul_peak",
    "pass_cost",
    "run_bench",
    "summary_lines",
    "trace_modules",
    "write_perf",
    "write_train",
]
