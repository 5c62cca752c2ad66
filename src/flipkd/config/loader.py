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


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error.

    (PyYAML keeps the last value silently: a second ``train:`` block would replace the first.)
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"duplicate key {key_node.value!r} (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )  # fmt: skip
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


MAX_CONFIG_NODES = 100_000
"""The most values a config may expand to (YAML aliases can nest into billions: a "YAML bomb")."""


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """How many values ``node`` holds once every alias is copied out (memoised by identity)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_CONFIG_NODES + 1  # a node that contains itself expands forever
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    memo[id(node)] = size = 1 + sum(_expanded_size(c, memo) for c in children)
    return size


def _parse_yaml(text: str, where: str, hint: str = "", lines: bool = True) -> Any:
    """YAML text to Python; :class:`ConfigError` naming ``where`` (and the line, ``lines``)."""
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except RecursionError:
        raise ConfigError(f"{where}: invalid YAML (nested too deeply){hint}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark and lines else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise ConfigError(f"{where}{line}: invalid YAML ({problem}){hint}") from None
    try:
        size = _expanded_size(doc, {})
    except RecursionError:
        size = MAX_CONFIG_NODES + 1
    if size > MAX_CONFIG_NODES:
        raise ConfigError(
            f"{where}: expands to more than {MAX_CONFIG_NODES:,} values (nested YAML aliases)"
        )
    return doc


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``dotted.key=value`` applied (values parsed as YAML)."""
    out = json.loads(json.dumps(raw, default=str))  # a YAML date becomes its text
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
        hint = (
            "; quote a text that starts with {, [, & or * in YAML quotes, e.g. 'key=\"{a} vs {b}\"'"
        )
        node[parts[-1]] = _parse_yaml(value, f"override {item!r}", hint, lines=False)
    return out


def _blame(field: str, msg: str, source: str, overrides: list[str]) -> str:
    """Who set ``field``: the override that names it (or a field inside it), else the file.

    A check across fields (a section's or the whole config's) names ``source`` and the last
    override whose field the message mentions.
    """
    keys = [(item.partition("=")[0], item) for item in overrides]
    for key, item in reversed(keys):  # the last override of a field wins
        if field == key or field.startswith(key + "."):
            return f"override {item!r}"
    for key, item in reversed(keys):
        inside = field == "(root)" or key.startswith(field + ".")
        if inside and key.rsplit(".", 1)[-1] in msg:
            return f"{source} with override {item!r}"
    return source


def _format_validation(err: ValidationError, source: str, overrides: list[str] = ()) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(root)"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    msg = " ".join(first["msg"].removeprefix("Value error, ").split())
    who = _blame(field, msg, source, list(overrides))
    return f"{who}: {msg}{more}" if field == "(root)" else f"{who}: field {field}: {msg}{more}"


def validate(
    raw: dict[str, Any], source: str = "config", overrides: list[str] = ()
) -> FlipkdConfig:
    """Validate a plain dict into a :class:`FlipkdConfig` or raise :class:`ConfigError`.

    ``overrides`` are the ``key=value`` strings applied to ``raw``: an error in a field one
    of them set names that override, not ``source``.
    """
    try:
        return FlipkdConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation(err, source, overrides)) from None


def read_yaml_file(path: str | Path, what: str = "config") -> Any:
    """The YAML document of a regular UTF-8 file; :class:`ConfigError` for anything else.

    A directory, FIFO or device, an unreadable file, bytes that are not UTF-8 (with the line),
    invalid YAML (with the line), a key given twice, and an empty document are errors.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, not a {what} file")
    if not p.exists():
        raise ConfigError(f"{p}: {what} file not found")
    if not p.is_file():
        raise ConfigError(f"{p}: not a regular file (a FIFO, socket or device)")
    try:
        data = p.read_bytes()
    except OSError as err:
        raise ConfigError(f"{p}: cannot read the {what} file ({err.strerror or err})") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{p}: the {what} file is UTF-16 or UTF-32; save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{p}:{line}: bytes that are not UTF-8 ({err.reason}); save the {what} as UTF-8"
        ) from None
    doc = _parse_yaml(text, str(p))
    if doc is None:
        raise ConfigError(
            f"{p}: the {what} file is empty (set at least one field, e.g. name: my-run)"
        )
    return doc


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> FlipkdConfig:
    """Load a YAML config (or defaults when ``path`` is None) and apply overrides.

    Raises:
        ConfigError: the file cannot be read as a YAML mapping (see :func:`read_yaml_file`),
            an override is malformed, or a field is invalid (naming the file or the override).
    """
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        raw = read_yaml_file(path)
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: top level must be a mapping (field: value lines)")
    raw = apply_overrides(raw, overrides or [])
    return validate(raw, source, overrides or [])


def run_directory(cfg: FlipkdConfig) -> Path:
    """``output_dir/name``, checked: nothing on the way to it may be a file.

    Raises:
        ConfigError: ``output_dir`` (or a folder above it, or the run directory) is a file.
    """
    out = Path(cfg.output_dir)
    run = out / cfg.name
    for folder in [run, *run.parents]:
        if not (folder.exists() or folder.is_symlink()):
            continue
        if not folder.is_dir():
            field = "output_dir" if folder in (out, *out.parents) else "name"
            raise ConfigError(
                f"{field}: {folder} is a file, not a directory; choose another {field}"
            )
        break
    return run


# fields that never change what a run computes (diagnostics only read; see test_diagnose)
HASH_EXCLUDE = {"name": True, "output_dir": True, "train": {"diagnose_every"}}
# options added after runs were kept by hash (by their path in the config), with the value
# that reproduces the behaviour before them: left out of the hash at that value, so existing
# runs keep their keys
HASH_NEUTRAL = {
    ("loss", "gen_vocab"): "full",
    ("loss", "gen_teacher"): 0.0,
    ("loss", "gen_balance"): 0.0,
    ("loss", "label_rank"): 0.0,
    ("loss", "tap_rank"): 0.0,
    ("loss", "dist_scope"): "pairs",
    ("loss", "rep_prior"): "data",
    ("train", "adam_beta2"): 0.999,
    ("train", "min_lr_ratio"): 0.0,
    ("train", "clip_scope"): "global",
    ("train", "grad_route"): "shared",
    ("train", "rep_max_grad_norm"): None,
    ("train", "hard_batches"): 0,
    ("teacher", "freeze_embeddings"): False,
    ("teacher", "group_by_length"): False,
    ("teacher", "max_train_pairs"): "data",
    ("student", "tap", "shared"): True,
    ("student", "pack_tokens"): 512,
    ("student", "prompt", "answer_suffix"): None,
    ("student", "prompt", "label_prefix"): None,
}


# Bumped when a code change alters what the same config computes, so runs kept by hash
# before it are not read back as if they were the same: 2 = the LoRA init drawn from
# train.seed (before, from whatever the process had drawn earlier when a ladder or sweep
# built the student).
RESULTS_VERSION = 2


def config_hash(cfg: FlipkdConfig, exclude: dict | None = None) -> str:
    """Stable hash of the resolved config, ignoring fields that do not change results.

    Every other field counts with its value (a changed default re-keys the runs it
    changes); options in ``HASH_NEUTRAL`` are left out at their neutral value.
    """
    data = cfg.model_dump(mode="json", exclude=exclude or HASH_EXCLUDE)
    for (*parents, key), neutral in HASH_NEUTRAL.items():
        node = data
        for name in parents:
            node = node.get(name, {})
        if node.get(key, neutral) == neutral:
            node.pop(key, None)
    rep_terms = cfg.loss.contrastive != "none" or cfg.loss.dist != "none"
    if not (cfg.loss.gen and rep_terms):
        for key in ("grad_route", "rep_max_grad_norm"):  # one term: nothing to route
            data.get("train", {}).pop(key, None)
    if not cfg.loss.gen:  # no L_gen to weight
        data.get("loss", {}).pop("gen_balance", None)
    if not rep_terms:  # no term reads the representation terms' teacher probability
        data.get("loss", {}).pop("rep_prior", None)
    data["results_version"] = RESULTS_VERSION
    blob = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def save_resolved(cfg: FlipkdConfig, run_dir: str | Path) -> Path:
    """Write the resolved config as ``config.yaml`` in ``run_dir``."""
    target = Path(run_dir) / "config.yaml"
    with atomic_file(target) as fh:
        yaml.safe_dump(cfg.model_dump(mode="json"), fh, sort_keys=False, allow_unicode=True)
    return target
