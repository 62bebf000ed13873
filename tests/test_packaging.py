"""A built wheel, installed outside the checkout, finds the shipped presets."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_install_finds_presets(tmp_path):
    wheels = tmp_path / "wheels"
    # Build offline when the build backend is already here; else let pip fetch it.
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", str(REPO), "--no-deps", *isolation, "-q", "-w", str(wheels)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    wheel = next(wheels.glob("rlkit-*.whl"))
    # rlkit alone from the wheel, into a plain folder put first on this interpreter's path:
    # the dependencies come from the running environment (a virtualenv or not), and the
    # checkout (an editable install, or the cwd) cannot be the copy that is imported.
    target = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    code = (
        "import rlkit.config as c; from pathlib import Path; "
        "print(Path(c.__file__).resolve()); "
        "print(c.load_preset('a2c', 'CartPole-v1')['num_envs']); "
        "print(sorted(p.name for p in (c.preset_dir() / 'envs').iterdir())); "
        "print(sorted(p.name for p in (c.preset_dir() / 'agents').glob('*.yaml'))); "
        "print(sorted(p.name for p in (c.preset_dir() / 'agents' / 'tune').iterdir()))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout.splitlines()
    assert out[0] == str((target / "rlkit" / "config.py").resolve()), out  # the wheel's copy
    assert out[1] == "8"
    assert out[2] == str(sorted(p.name for p in (REPO / "envs").glob("*.yaml"))), out
    assert out[3] == str(sorted(p.name for p in (REPO / "agents").glob("*.yaml"))), out
    # rlkit.tune's search spaces ship next to the presets.
    assert out[4] == str(sorted(p.name for p in (REPO / "agents" / "tune").glob("*.yaml"))), out
    assert "a2c.yaml" in out[4]
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
