"""Read YAML configs, apply ``a.b.c=value`` overrides, validate, save the resolved copy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flipkd.config.schema import FlipkdConfig
from flipkd.errors import ConfigError
from flipkd.paths import atomic_file


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``dotted.key=value`` applied (values parsed as YAML)."""
    out = json.loads(json.dumps(raw))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return out


def _format_validation(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(root)"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: field {field}: {first['msg']}{more}"


def validate(raw: dict[str, Any], source: str = "config") -> FlipkdConfig:
    """Validate a plain dict into a :class:`FlipkdConfig` or raise :class:`ConfigError`."""
    try:
        return FlipkdConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation(err, source)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> FlipkdConfig:
    """Load a YAML config (or defaults when ``path`` is None) and apply overrides."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{p}{line}: invalid YAML ({getattr(err, 'problem', err)})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: top level must be a mapping")
    raw = apply_overrides(raw, overrides or [])
    return validate(raw, source)


def config_hash(cfg: FlipkdConfig, exclude: tuple[str, ...] = ("name", "output_dir")) -> str:
    """Stable hash of the resolved config, ignoring fields that do not change results."""
    data = cfg.model_dump(mode="json", exclude=set(exclude))
    blob = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def save_resolved(cfg: FlipkdConfig, run_dir: str | Path) -> Path:
    """Write the resolved config as ``config.yaml`` in ``run_dir``."""
    target = Path(run_dir) / "config.yaml"
    with atomic_file(target) as fh:
        yaml.safe_dump(cfg.model_dump(mode="json"), fh, sort_keys=False, allow_unicode=True)
    return target
