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


def is_sectioned(data: dict[str, Any]) -> bool:
    """Whether a settings mapping is a preset file of sections (``default``, env ids).

    Settings are never mappings, so a file whose every value is one holds sections.
    """
    return bool(data) and all(isinstance(v, dict) for v in data.values())


def env_settings(data: dict[str, Any], env_id: str, path: Path | str) -> dict[str, Any]:
    """The settings a ``--config`` file gives ``env_id``.

    A plain file of ``key: value`` settings gives them all. A preset file of sections (as
    ``agents/<agent>.yaml``, or one written by ``rlkit.tune --save-preset``) gives its
    ``default`` section updated by the env's own (or by ``atari`` for ALE ids without one).

    Raises:
        ConfigError: if a preset file has neither a section for ``env_id`` nor ``default``.
    """
    if not is_sectioned(data):
        return data
    atari = env_id.startswith("ALE/") or "NoFrameskip" in env_id
    own = env_id if env_id in data else "atari" if atari and "atari" in data else None
    if own is None and "default" not in data:
        raise ConfigError(
            f"config file {str(path)!r} holds preset sections {sorted(data)}, none for "
            f"{env_id!r} (nor a default section)"
        )
    values = dict(data.get("default") or {})
    values.update((data.get(own) or {}) if own else {})
    return values
