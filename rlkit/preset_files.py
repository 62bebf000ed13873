"""The shipped preset files: where they are, and how a YAML settings file is read.

Both ``rlkit.config`` (agent presets, ``--config`` files) and ``rlkit.envs.atari``
(preprocessing protocols) read them; this module imports nothing else from rlkit but its
errors, so neither has to import the other for it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rlkit.errors import ConfigError


def preset_dir() -> Path:
    """The folder holding the shipped ``agents/`` and ``envs/`` presets."""
    return Path(str(resources.files("rlkit") / "presets"))


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with ``safe_load``; errors name the file.

    Raises:
        ConfigError: if the file is missing, is not valid YAML or holds no mapping.
    """
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of key: value")
    return data
