"""The teacher: a small bi-encoder, fine-tuned with sentence-transformers, cached per text.

Public API::

    train_teacher(pairs_train, pairs_dev, cfg=None, *, model_path, out_dir, ...) -> TeacherRun
    build_teacher_cache(run_or_model, texts, *, out_dir, calibration_pairs=()) -> TeacherCache
    open_teacher_cache(path, *, teacher=None, texts=None) -> TeacherCache
    TeacherCache.embed(texts) / .sim(a, b) / .pair_sim(a, b) / .prob(sim)
    fit_calibration(sims, labels) -> Calibration
    write_teacher_report(out_dir, dev_sims, dev_labels, calibration, metrics)
    build_tiny_teacher(out_dir, texts)   # a tiny random model for tests
"""

from flipkd.teacher.cache import (
    TeacherCache,
    build_teacher_cache,
    default_cache_dir,
    open_teacher_cache,
)
from flipkd.teacher.calibration import Calibration, fit_calibration
from flipkd.teacher.encoder import TeacherSource, resolve_source
from flipkd.teacher.fit import LOSSES
from flipkd.teacher.report import disagreement_table, write_teacher_report
from flipkd.teacher.tiny import build_tiny_teacher
from flipkd.teacher.train import TeacherRun, train_teacher
from flipkd.teacher.workflow import cache_splits, report_run

__all__ = [
    "LOSSES",
    "Calibration",
    "TeacherCache",
    "TeacherRun",
    "TeacherSource",
    "build_teacher_cache",
    "build_tiny_teacher",
    "cache_splits",
    "default_cache_dir",
    "disagreement_table",
    "fit_calibration",
    "open_teacher_cache",
    "report_run",
    "resolve_source",
    "train_teacher",
    "write_teacher_report",
]
