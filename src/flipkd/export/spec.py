"""The schema of ``flipkd.json``: written by ``export``, read by ``flipkd.load``.

Export fills every field; a student run directory, loaded directly, gives the fields
loading needs (base, tap, prompt, lengths, thresholds). Fields that only describe the
export (teacher, embedder, versions) are free-form dicts: they are for readers, and
loading never depends on them. ``to_json`` writes only the fields that were set, so a
run directory's spec carries no empty export fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flipkd.config import PromptConfig, TapConfig
from flipkd.errors import ModelError
from flipkd.modes import MODES, Mode

EXPORT_FILE = "flipkd.json"
FORMAT = "flipkd-export"
FORMAT_VERSION = 4  # 2: the rep threshold is a cosine (format 1 held (cos + 1) / 2);
# 3: the plain prompt's answer cue and label prefix are the language's (recorded);
# 4: an optional ``mix`` (the mix mode's dev scales and threshold)


class BaseRef(BaseModel):
    """The student's base model: name, where it was, and what it hashed to."""

    name: str
    registered: bool | None = None
    path: str | None = None
    config_hash: str | None = None
    weights_files: list[str] | None = None
    weights_hash: str | None = None


class TapSpec(TapConfig):
    """The tap as configured, plus what it resolved to in the model."""

    module_names: list[str] | None = None
    dim: int | None = None


class PromptSpec(PromptConfig):
    """The prompt as the student renders it (language resolved, label words and their ids)."""

    label_token_ids: list[int] | None = None
    chat_template: str | None = None


class MixSpec(BaseModel):
    """The ``mix`` mode as fixed on dev: ``weight · z(logit gen) + (1 − weight) · z(rep)``,
    each ``z`` with the dev pairs' mean and spread (:class:`flipkd.mixing.MixScales`), and the
    decision threshold chosen on the mixed dev scores."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    weight: float = Field(ge=0, le=1)
    label_mean: float
    label_std: float = Field(ge=0)
    cosine_mean: float
    cosine_std: float = Field(ge=0)
    threshold: float
    source: str | None = None


class ExportSpec(BaseModel):
    """The content of ``flipkd.json``."""

    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    flipkd_version: str | None = None
    name: str | None = None
    benchmark: str | None = None
    base_model: BaseRef
    adapter: dict[str, Any] | None = None
    tap: TapSpec
    prompt: PromptSpec
    max_length: int
    max_text_length: int
    thresholds: dict[Mode, float]
    threshold_sources: dict[Mode, str] | None = None
    mix: MixSpec | None = None
    scores: dict[str, str] | None = None
    teacher: dict[str, Any] | None = None
    config_hash: str | None = None
    run: str | None = None
    embedder: dict[str, Any] | None = None
    plots: list[str] | None = None
    merged: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _older_formats(cls, data: Any) -> Any:
        """Read older formats as the current one: format 1 stored the rep threshold as
        ``(cos + 1) / 2``; formats 1-2 put a space before the label word of every plain
        (non-chat) prompt, Chinese ones included, and did not record it."""
        if not isinstance(data, dict) or data.get("format_version") not in (1, 2):
            return data
        if data["format_version"] == 1:
            thresholds = dict(data.get("thresholds") or {})
            if isinstance(thresholds.get("rep"), int | float):
                thresholds["rep"] = 2.0 * thresholds["rep"] - 1.0
            data = {**data, "thresholds": thresholds}
        prompt = data.get("prompt")
        if isinstance(prompt, dict) and not prompt.get("use_chat_template", True):
            prompt = {"answer_suffix": "\nAnswer:", "label_prefix": " ", **prompt}
            data = {**data, "prompt": prompt}
        return {**data, "format_version": FORMAT_VERSION}

    @field_validator("thresholds")
    @classmethod
    def _every_mode(cls, value: dict[Mode, float]) -> dict[Mode, float]:
        missing = [m for m in MODES if m not in value]
        if missing:
            raise ValueError(f"no threshold for {', '.join(missing)}")
        return value

    @property
    def adapter_dir(self) -> str:
        """The adapter's folder, relative to the export directory."""
        return (self.adapter or {}).get("dir", "adapter")

    def to_json(self) -> dict[str, Any]:
        """The fields that were set, as JSON values (the file's content)."""
        return self.model_dump(mode="json", exclude_unset=True)


def read_spec(path: Path) -> ExportSpec:
    """Read and check a ``flipkd.json``, or raise a one-line :class:`ModelError` naming it."""
    where = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelError(f"invalid JSON ({err.msg})", where=f"{where}:{err.lineno}") from None
    if not isinstance(data, dict):
        raise ModelError("must be a JSON object", where=where)
    version = data.get("format_version", 0)
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ModelError(f"format {version} is newer than this flipkd's", where=where)
    try:
        return ExportSpec.model_validate(data)
    except ValidationError as err:
        raise ModelError(_summary(err), where=where) from None


def _summary(err: ValidationError) -> str:
    errors = err.errors(include_url=False)
    missing = [str(e["loc"][0]) for e in errors if e["type"] == "missing" and len(e["loc"]) == 1]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    first = errors[0]
    field = ".".join(str(p) for p in first["loc"]) or "file"
    return f"{field}: {first['msg'].removeprefix('Value error, ')}"
