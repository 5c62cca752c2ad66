"""Load a teacher (registry name, run directory or sentence-transformers directory) and encode.

The teacher package is the only place that talks to sentence-transformers.
A *source* is resolved once into plain facts (model directory, query prefix,
max length, weights hash); loading and encoding take those facts.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from flipkd.errors import ModelError
from flipkd.paths import hash_files

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

QUERY_PROMPT = "query"
MODULE_CONFIG = "sentence_bert_config.json"  # the Transformer module's settings


@dataclass(frozen=True)
class TeacherSource:
    """Where a teacher's weights are and how it must be called.

    Attributes:
        model_id: A readable name (registry name, ``name+ft`` for fine-tuned runs).
        model_dir: The sentence-transformers directory.
        query_prefix: Text put before every input ("" for none; "query: " for e5).
        max_length: Token limit per text (None: the model's own).
    """

    model_id: str
    model_dir: Path
    query_prefix: str = ""
    max_length: int | None = None

    def weights_hash(self) -> str:
        """Hash of every ``*.safetensors`` file of the model directory (sorted by path)."""
        files = sorted(self.model_dir.rglob("*.safetensors"))
        if not files:
            raise ModelError(f"{self.model_dir}: no *.safetensors weights to identify the teacher")
        return hash_files(files)


def _from_run(run_dir: Path) -> TeacherSource:
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    if info.get("kind") != "teacher":
        raise ModelError(f"{run_dir}: run kind is {info.get('kind')!r}, not a teacher run")
    model_dir = Path(info["model_dir"])
    model_dir = model_dir if model_dir.is_absolute() else run_dir / model_dir
    suffix = "+ft" if info.get("finetuned") else ""
    return TeacherSource(
        f"{info['model']}{suffix}", model_dir, info.get("query_prefix", ""), info.get("max_length")
    )


def resolve_source(
    run_or_model: str | Path, *, query_prefix: str | None = None, max_length: int | None = None
) -> TeacherSource:
    """Resolve a teacher run directory, sentence-transformers directory or registry name.

    Args:
        run_or_model: A run directory (with ``run.json``), a model directory, or a name
            known to :func:`flipkd.models.resolve_teacher`.
        query_prefix: Overrides the prefix (default: the run's, or the registry's, or "").
        max_length: Overrides the token limit.
    """
    path = Path(run_or_model)
    if (path / "run.json").is_file():
        src = _from_run(path)
    elif (path / "modules.json").is_file():
        src = TeacherSource(path.name, path)
    else:
        from flipkd.models import resolve_teacher

        resolved = resolve_teacher(str(run_or_model))
        src = TeacherSource(resolved.name, Path(resolved.path), resolved.query_prefix)
    return TeacherSource(
        src.model_id,
        src.model_dir,
        src.query_prefix if query_prefix is None else query_prefix,
        src.max_length if max_length is None else max_length,
    )


def carry_load_kwargs(source_dir: Path, saved_dir: Path) -> None:
    """Give the model saved in ``saved_dir`` the ``model_kwargs`` ``source_dir``'s is loaded with.

    sentence-transformers reads a Transformer module's ``model_kwargs`` from its config when
    it loads, but does not write them back when it saves: e5 (converted without a pooler and
    loaded with ``add_pooling_layer: false``) fine-tuned and saved would reload with a fresh,
    unused pooler and transformers' "LOAD REPORT" of missing weights.
    """
    src, dst = Path(source_dir) / MODULE_CONFIG, Path(saved_dir) / MODULE_CONFIG
    if not (src.is_file() and dst.is_file()):
        return
    kwargs = json.loads(src.read_text()).get("model_kwargs")
    config = json.loads(dst.read_text())
    if kwargs and "model_kwargs" not in config:
        config["model_kwargs"] = kwargs
        dst.write_text(json.dumps(config, indent=2) + "\n")


def load_encoder(source: TeacherSource, device: str | None = None) -> SentenceTransformer:
    """Load the teacher offline; the query prefix becomes its default prompt.

    Setting the prefix as the model's default prompt makes every ``encode`` (ours
    and the sentence-transformers evaluators') apply it, and a saved fine-tuned
    model carries it in ``config_sentence_transformers.json``.
    """
    from sentence_transformers import SentenceTransformer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (source.model_dir / "modules.json").is_file():
        raise ModelError(f"{source.model_dir}: not a sentence-transformers model directory")
    model = SentenceTransformer(str(source.model_dir), device=device, local_files_only=True)
    if source.query_prefix:
        model.prompts = {**model.prompts, QUERY_PROMPT: source.query_prefix}
        model.default_prompt_name = QUERY_PROMPT
    if source.max_length:
        model.max_seq_length = source.max_length
    return model


def encode_texts(
    model: SentenceTransformer, texts: list[str], *, batch_size: int = 64, progress: bool = False
) -> torch.Tensor:
    """L2-normalised fp32 embeddings [N, d] on the CPU, without gradients.

    sentence-transformers sorts the texts by length before batching (length
    bucketing) and restores the order afterwards.
    """
    if not texts:
        dim = model.get_embedding_dimension() or 0
        return torch.zeros(0, dim)
    with torch.inference_mode():
        emb = model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_tensor=True,
            normalize_embeddings=True,
        )
    return emb.detach().to("cpu", torch.float32).contiguous()


class TeacherEncoder:
    """A teacher as an FAQ-index encoder: ``name`` and ``encode(texts)`` -> unit-norm float32.

    What ``flipkd faq eval`` builds the teacher's index with (the serve layer
    stays free of sentence-transformers). It has no generated label, so it
    cannot re-rank.

    Attributes:
        name: The source's ``model_id``.
        source: Where the weights are.
        language: The registry's language for a registered teacher, else None.
    """

    def __init__(self, source: TeacherSource, *, batch_size: int = 64) -> None:
        from flipkd.models import REGISTRY

        self.name, self.source, self.batch_size = source.model_id, source, batch_size
        spec = REGISTRY.get(source.model_id)
        self.language = spec.language if spec is not None else None
        self.model = load_encoder(source)

    def encode(self, texts: list[str]) -> np.ndarray:
        """``[n, d]`` float32, L2-normalised."""
        return encode_texts(self.model, list(texts), batch_size=self.batch_size).numpy()
