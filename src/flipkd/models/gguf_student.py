"""Convert a GGUF decoder checkpoint into a plain transformers directory (fp32 safetensors).

transformers de-quantizes GGUF to fp32 on load (``gguf_file=``) but then marks the
model as quantized, and ``save_pretrained`` refuses it; the marker and
``config.quantization_config`` are cleared before saving.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import torch

from flipkd.errors import ModelError

log = logging.getLogger(__name__)


def join_parts(parts: list[Path], target: Path, sha256: str | None = None) -> Path:
    """Concatenate split GGUF parts in order into ``target`` and check the hash if given."""
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                while block := fh.read(1 << 24):
                    digest.update(block)
                    out.write(block)
    if sha256 and digest.hexdigest() != sha256:
        raise ModelError(f"{target}: sha256 {digest.hexdigest()} does not match {sha256}")
    return target


def _clear_quantizer_marker(model: torch.nn.Module) -> None:
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Load ``gguf_path`` with transformers, de-quantized to fp32, and save it to ``out_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    log.info("de-quantizing %s (once; cached afterwards)", gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    _clear_quantizer_marker(model)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def convert_gguf_parts(
    parts: list[Path], out_dir: Path, file_name: str, sha256: str | None = None
) -> None:
    """Join split parts into a temporary GGUF beside ``out_dir``, convert it, then delete it."""
    scratch = out_dir / "_gguf"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        gguf = join_parts(parts, scratch / file_name, sha256)
        convert_gguf(gguf, out_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
