"""Model registry: registered students and teachers, converted once into the cache."""

from flipkd.models.registry import (
    REGISTRY,
    ModelSpec,
    ResolvedModel,
    convert,
    is_converted,
    model_dir,
    resolve,
    resolve_student,
    resolve_teacher,
)

__all__ = [
    "REGISTRY",
    "ModelSpec",
    "ResolvedModel",
    "convert",
    "is_converted",
    "model_dir",
    "resolve",
    "resolve_student",
    "resolve_teacher",
]
