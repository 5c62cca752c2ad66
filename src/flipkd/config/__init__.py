"""Configuration: YAML files validated by pydantic, with dotted overrides."""

from flipkd.config.loader import apply_overrides, config_hash, load_config, save_resolved
from flipkd.config.schema import (
    DataConfig,
    FlipkdConfig,
    LoraConfig,
    LossConfig,
    PromptConfig,
    StudentConfig,
    TapConfig,
    TeacherConfig,
    TrainConfig,
)

__all__ = [
    "DataConfig",
    "FlipkdConfig",
    "LoraConfig",
    "LossConfig",
    "PromptConfig",
    "StudentConfig",
    "TapConfig",
    "TeacherConfig",
    "TrainConfig",
    "apply_overrides",
    "config_hash",
    "load_config",
    "save_resolved",
]
