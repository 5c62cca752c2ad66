"""The packaged all-MiniLM-L6-v2 teacher on 50 real MQP pairs (marked ``real``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from flipkd.teacher import build_teacher_cache, open_teacher_cache
from flipkd.teacher.encoder import encode_texts, load_encoder, resolve_source

pytestmark = pytest.mark.real


def test_minilm_embeds_mqp_pairs(tmp_path: Path) -> None:
    from flipkd.data import load_split
    from flipkd.paths import shared_data_root

    if not (shared_data_root() / "mqp").is_dir():
        pytest.skip(f"shared data folder {shared_data_root() / 'mqp'} is missing")

    torch.set_num_threads(2)
    pairs = load_split("mqp", "dev", max_pairs=50, seed=0)
    a, b = [p.text_a for p in pairs], [p.text_b for p in pairs]
    cache = build_teacher_cache(
        "minilm-l6", [*a, *b], out_dir=tmp_path / "c", calibration_pairs=pairs, progress=False
    )
    assert cache.dim == 384 and cache.manifest["model_id"] == "minilm-l6"
    sims = cache.pair_sim(a, b).numpy()
    labels = np.array([p.label for p in pairs])
    assert roc_auc_score(labels, sims) > 0.7  # zero-shot MiniLM on MQP is about 0.86
    assert cache.calibration.method == "logistic" and cache.calibration.coef > 0
    model = load_encoder(resolve_source("minilm-l6"))
    direct = (encode_texts(model, a[:5]) * encode_texts(model, b[:5])).sum(-1)
    torch.testing.assert_close(cache.pair_sim(a[:5], b[:5]), direct, atol=1e-5, rtol=0)
    assert open_teacher_cache(tmp_path / "c", teacher="minilm-l6", texts=a).dim == 384
