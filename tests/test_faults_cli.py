"""Faults seen from the CLI: signals, a killed checkpoint write, a full disk, NaN rewards.

Where the process is what is tested (signals to its process group and the workers it must
not leave behind, SIGKILL), each run is a real ``python -m rlkit.train`` or a small script
around ``train.main`` that breaks one thing. The other faults run ``train.main`` in this
process, as the CLI's entry point: the checks are its exit code and what the terminal
would show (what it prints on stderr, and the warnings it logs, which a bare CLI process
prints on stderr through logging's last-resort handler).
"""

from __future__ import annotations

import csv
import errno
import functools
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gymnasium as gym
import pytest
from procs import live_group_members

from rlkit import experiment, train
from rlkit.checkpoint import Checkpointer
from rlkit.envs.testing import FaultInjector, make_faulty_env

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
QUIET = ["--final-eval-episodes", "0", "--set", "hidden_sizes=[16]", "--set", "log_interval=200"]


def dqn_args(run_dir: Path, *extra: str) -> list[str]:
    return [
        "--agent", "dqn", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--quiet",
        "--set", "learning_starts=100", "--set", "buffer_size=5000", *QUIET,
        # Few gradient steps (the preset's 128 every 256 env steps cost minutes here): these
        # tests are about checkpoints and faults, not learning.
        "--set", "train_frequency=64", "--set", "gradient_steps=4", *extra,
    ]  # fmt: skip


def run_script(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``body`` (which ends by calling ``train.main``) as a script with ``args``."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs /proc to list processes")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_writes_a_final_checkpoint_and_leaves_no_worker(sig, tmp_path):
    run_dir = tmp_path / "run"
    args = ["--agent", "a2c", "--env", "CartPole-v1", "--vectorization", "async"]
    args += ["--num-envs", "2", "--total-steps", "1e9", "--run-dir", str(run_dir), *QUIET]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlkit.train", *args],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a job in a terminal
    )
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "progress.csv").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        time.sleep(1.0)
        os.killpg(proc.pid, sig)  # the whole group, as a terminal or a service manager does
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + sig, (out, err)
    assert "Traceback" not in err, err
    assert "interrupted" in err and "policy so far saved" in out
    assert f"continue with: python -m rlkit.train --resume {run_dir}" in out
    path, state, _ = Checkpointer(run_dir).load_latest()
    assert state["runner"]["env_steps"] > 0
    assert (run_dir / "policy" / "policy.json").exists()
    time.sleep(0.5)
    assert live_group_members(proc.pid) == set(), "worker processes outlived the run"
    # The checkpoint continues: a resume to a few hundred more steps finishes.
    more = str(state["runner"]["env_steps"] + 400)
    assert train.main(["--resume", str(run_dir), "--total-steps", more, "--quiet"]) == 0


KILL_DURING_SECOND_CHECKPOINT = """
    import os, signal, sys
    import rlkit.checkpoint as ck
    from rlkit import train

    saves = 0
    original_save, original_fsync = ck.Checkpointer.save, ck._fsync_file

    def save(self, *args, **kwargs):
        global saves
        saves += 1
        return original_save(self, *args, **kwargs)

    def fsync(path):  # the second checkpoint's files are written, none renamed yet
        if saves == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        original_fsync(path)

    ck.Checkpointer.save, ck._fsync_file = save, fsync
    sys.exit(train.main(sys.argv[1:]))
"""


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path):
    run_dir = tmp_path / "run"
    args = dqn_args(run_dir, "--total-steps", "800", "--checkpoint-every", "200")
    result = run_script(tmp_path, KILL_DURING_SECOND_CHECKPOINT, *args)
    assert result.returncode == -signal.SIGKILL, result.stderr
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == [".tmp-step_000000000400", "step_000000000200"]  # half-written: ignored
    path, state, arrays = Checkpointer(run_dir).load_latest()
    assert path.name == "step_000000000200" and state["runner"]["env_steps"] == 200
    assert arrays["frames"].shape[0] > 0
    assert train.main(["--resume", str(run_dir), "--quiet"]) == 0  # and it resumes to 800
    assert Checkpointer(run_dir).checkpoints()[-1].name == "step_000000000800"


def write_fails_at(monkeypatch: pytest.MonkeyPatch, *fail_at: int) -> None:
    """The disk fills up during the ``fail_at``-th checkpoint writes (counted from 1)."""
    saves = 0
    original = Checkpointer._write

    def write(self, tmp, step, *args):
        nonlocal saves
        saves += 1
        if saves in fail_at:  # half of the files are there when the disk fills up
            (tmp / "arrays").mkdir(parents=True, exist_ok=True)
            (tmp / "arrays" / "partial.npy").write_bytes(b"x" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp / "agent"))
        return original(self, tmp, step, *args)

    monkeypatch.setattr(Checkpointer, "_write", write)


def run_main(args: list[str], capsys, caplog) -> tuple[int, str]:
    """``train.main(args)`` here: its exit code and its terminal's stderr (prints, logs)."""
    code = train.main(args)
    return code, capsys.readouterr().err + caplog.text


def test_a_full_disk_at_a_periodic_checkpoint_is_reported_and_training_goes_on(
    tmp_path, monkeypatch, capsys, caplog
):
    run_dir = tmp_path / "run"
    write_fails_at(monkeypatch, 2)
    args = dqn_args(run_dir, "--total-steps", "600", "--checkpoint-every", "200")
    code, err = run_main(args, capsys, caplog)
    assert code == 0, err
    assert "could not write checkpoint" in err
    assert os.strerror(errno.ENOSPC) in err
    assert "step_000000000200, is intact" in err
    assert "training goes on" in err
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["step_000000000200", "step_000000000600"]  # no half-written folder
    assert Checkpointer(run_dir).load_latest()[0].name == "step_000000000600"


def test_a_full_disk_at_the_final_checkpoint_stops_with_exit_code_1(
    tmp_path, monkeypatch, capsys, caplog
):
    run_dir = tmp_path / "run"
    write_fails_at(monkeypatch, 3)
    args = dqn_args(run_dir, "--total-steps", "500", "--checkpoint-every", "200")
    code, err = run_main(args, capsys, caplog)
    assert code == 1, err
    assert "error: the run stopped: could not write checkpoint" in err
    assert "step_000000000400, is intact" in err
    assert "Traceback" not in err
    assert Checkpointer(run_dir).load_latest()[0].name == "step_000000000400"


@pytest.fixture
def broken_cartpole() -> Iterator[Callable[..., str]]:
    """Registers CartPole in a ``FaultInjector(**fault)`` as an env id, for this test only."""
    ids = []

    def register(**fault: object) -> str:
        env_id = f"rlkit/BrokenCartPole{len(ids)}-v0"
        gym.register(
            env_id,
            entry_point=make_faulty_env,
            kwargs=dict(env_id="CartPole-v1", **fault),
            max_episode_steps=500,
        )
        ids.append(env_id)
        return env_id

    yield register
    for env_id in ids:
        gym.registry.pop(env_id)


def test_nan_rewards_stop_the_run_with_exit_code_1_naming_the_checkpoint(
    tmp_path, broken_cartpole, capsys, caplog
):
    run_dir = tmp_path / "run"
    args = dqn_args(run_dir, "--total-steps", "20000", "--checkpoint-every", "500")
    args[args.index("CartPole-v1")] = broken_cartpole(fault="nan_reward", at_step=600)
    code, err = run_main([*args, "--set", "max_bad_updates=20"], capsys, caplog)
    assert code == 1, err
    assert "error: the run stopped:" in err and "non-finite loss" in err
    assert f"the last good checkpoint is {run_dir / 'checkpoints' / 'step_000000000500'}" in err
    assert "Traceback" not in err
    assert Checkpointer(run_dir).load_latest()[0].name == "step_000000000500"


def a2c_args(run_dir: Path, env_id: str, *extra: str) -> list[str]:
    return [
        "--agent", "a2c", "--env", env_id, "--run-dir", str(run_dir),
        "--quiet", "--num-envs", "2", *QUIET, *extra,
    ]  # fmt: skip


def restarts_logged(run_dir: Path) -> list[float]:
    with open(run_dir / "progress.csv", newline="") as f:
        return [float(r["time/env_restarts"]) for r in csv.DictReader(f) if r["time/env_restarts"]]


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("out_of_bounds", "element[0] is 1000000.0, outside the declared bounds [-4.8"),
        ("bad_obs", "dtype is float64 but the observation_space declares float32"),
    ],
)
def test_an_observation_outside_its_space_is_exit_2_naming_the_problem(
    fault, problem, tmp_path, broken_cartpole, capsys, caplog
):
    env_id = broken_cartpole(fault=fault, at_step=2)  # the first steps are checked
    args = a2c_args(tmp_path / "run", env_id, "--total-steps", "200")
    code, err = run_main(args, capsys, caplog)
    assert code == 2, err
    assert "error:" in err and "outside its observation_space from step()" in err
    assert problem in err
    assert "Traceback" not in err


def test_more_env_faults_than_max_env_restarts_is_exit_1_with_the_traceback(
    tmp_path, broken_cartpole, capsys, caplog
):
    """``max_env_restarts`` reaches the runner from the settings (here 1, not the 3 default)."""
    env_id = broken_cartpole(fault="raise", at_step=150)  # every new env fails at its 150th
    args = a2c_args(tmp_path / "run", env_id, "--total-steps", "5000")
    code, err = run_main([*args, "--set", "max_env_restarts=1"], capsys, caplog)
    assert code == 1, err
    assert "error: the run stopped: the envs failed 2 times, more than max_env_restarts (1)" in err
    assert "RuntimeError: injected fault at step 150" in err  # the last failure's traceback
    assert "restart 1 of at most 1" in err
    assert restarts_logged(tmp_path / "run") == [1.0]


def test_a_hung_async_worker_is_restarted_after_env_step_timeout(
    tmp_path, monkeypatch, capsys, caplog
):
    """``env_step_timeout`` reaches the async runner (2 s here: the default 120 s would make
    this test time out), the run recovers and counts the restart.

    The hang is a wrapper the run puts around each env (a picklable partial), so that the
    spawned workers, which build their own envs, get it too.
    """
    once_file = str(tmp_path / "struck")
    hang = functools.partial(FaultInjector, fault="hang", at_step=30, once_file=once_file)
    monkeypatch.setattr(experiment, "env_wrappers", lambda run: [hang])
    args = a2c_args(
        tmp_path / "run", "CartPole-v1", "--total-steps", "400", "--vectorization", "async",
        "--set", "env_step_timeout=2",
    )  # fmt: skip
    start = time.monotonic()
    code, err = run_main(args, capsys, caplog)
    assert code == 0, err
    assert "a worker hung: no answer within 2.0 s" in err
    assert restarts_logged(tmp_path / "run") == [1.0]
    assert time.monotonic() - start < 120


@pytest.fixture
def numerics_checked() -> Iterator[None]:
    """Turns ``--check-numerics``' process-wide TF op callback off again after the test."""
    import tensorflow as tf

    try:
        yield
    finally:
        tf.debugging.disable_check_numerics()


def test_check_numerics_names_the_op_that_made_the_first_nan(
    tmp_path, broken_cartpole, numerics_checked
):
    import tensorflow as tf

    args = dqn_args(tmp_path / "run", "--total-steps", "2000", "--check-numerics")
    args += ["--set", "train_frequency=50", "--set", "gradient_steps=2"]
    args[args.index("CartPole-v1")] = broken_cartpole(fault="nan_reward", at_step=150)
    # The error is TF's own (a CLI process ends with its traceback and exit code 1).
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        train.main(args)
    err = str(info.value)
    assert "Detected Infinity or NaN in output 0 of graph op" in err
    # The op is shown with the line of rlkit that created it, and it is not a constant.
    assert 'graph op "Const"' not in err
    assert re.search(r"rlkit/(agents/dqn|losses)\.py \(L\d+\)", err), err[-3000:]


def test_check_numerics_lets_a_healthy_a2c_run_finish(tmp_path, numerics_checked, capsys):
    args = ["--agent", "a2c", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "run")]
    args += [*QUIET, "--quiet", "--total-steps", "100", "--check-numerics"]
    assert train.main(args) == 0, capsys.readouterr().err[-3000:]
