"""A deliberately weaker teacher for the ``fip-weak-teacher`` row.

Seeded Gaussian noise (std ``noise``) is added to every cached teacher
embedding, which is then re-normalised, and the calibration is re-fitted on the
train pairs. The row's result records the weak teacher's own dev/test metrics,
so the table shows whether it really was weaker than the ``sft`` student.

The noise is drawn from the run's own seed (``train.seed``), not the teacher's: a profile
that fixes ``teacher.seed`` shares one teacher between the ladder's seeds, and each seed
should still get its own degraded copy of it.
"""

from __future__ import annotations

import torch

from flipkd.teacher import TeacherCache
from flipkd.teacher.cache import cache_from_embeddings


def degrade_cache(cache: TeacherCache, noise: float, train_pairs: list, seed: int) -> TeacherCache:
    """A copy of ``cache`` with noisy embeddings and a re-fitted calibration."""
    gen = torch.Generator().manual_seed(seed)
    emb = cache.embeddings + noise * torch.randn(cache.embeddings.shape, generator=gen)
    emb = torch.nn.functional.normalize(emb, dim=-1)
    return cache_from_embeddings(
        cache.path, cache.texts, emb, train_pairs,
        model_id=f"{cache.manifest.get('model_id')}+noise{noise}",
        weights_hash=f"{cache.manifest.get('weights_hash')}+noise{noise}",
    )  # fmt: skip


def weak_teacher_cache(cfg, cache: TeacherCache, train_pairs: list) -> TeacherCache:
    """``cache`` degraded by ``cfg.teacher.noise`` with the run's seed; ``cache`` itself at 0."""
    if cfg.teacher.noise <= 0:
        return cache
    return degrade_cache(cache, cfg.teacher.noise, train_pairs, cfg.train.seed)
