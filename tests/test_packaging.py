"""A built wheel, installed in a fresh virtualenv, finds the shipped presets."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX venv layout")
def test_wheel_install_finds_presets(tmp_path):
    wheels = tmp_path / "wheels"
    # Build offline when the build backend is already here; else let pip fetch it.
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            *isolation,
            "-q",
            "-w",
            str(wheels),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    wheel = next(wheels.glob("rlkit-*.whl"))
    # The heavy dependencies come from this interpreter's site-packages; rlkit itself only
    # from the wheel, installed into the new environment.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    code = (
        "import rlkit.config as c; from pathlib import Path; "
        "print(Path(c.__file__).resolve()); "
        "print(c.load_preset('a2c', 'CartPole-v1')['num_envs']); "
        "print(sorted(p.name for p in (c.preset_dir() / 'envs').iterdir()))"
    )
    out = subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout.splitlines()
    assert str(env_dir.resolve()) in out[0], out  # the installed wheel, not the checkout
    assert out[1] == "8"
    assert "atari.yaml" in out[2]


def test_no_file_is_ever_read_with_pickle():
    """Nothing rlkit reads from disk can run code: no pickle, unsafe YAML or pickled numpy."""
    import re

    forbidden = re.compile(
        r"(?<![\w.])(c?pickle|cloudpickle|dill|joblib)\.loads?\(|"  # pickle.load(s)
        r"import (c?pickle|cloudpickle|dill|joblib)\b|"
        r"allow_pickle\s*=\s*True|"
        r"yaml\.(unsafe_)?load\(|yaml\.Loader\b|"
        r"keras\.models\.load_model\(|safe_mode\s*=\s*False"
    )
    offenders = []
    for path in sorted((REPO / "rlkit").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if forbidden.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
        # Every np.load says allow_pickle=False explicitly.
        for match in re.finditer(r"np\.load\(([^)]*)\)", path.read_text()):
            if "allow_pickle=False" not in match.group(1):
                offenders.append(f"{path.relative_to(REPO)}: np.load({match.group(1)})")
    assert offenders == []
    assert forbidden.search("state = pickle.load(f)")  # the check itself can fail
    assert forbidden.search("yaml.load(text)")
