"""Async workers shut down cleanly: after a run, after Ctrl-C and after an exception."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import live_group_members

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs /proc to list processes")
def test_ctrl_c_during_async_training_leaves_no_worker(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlkit.train",
            "--agent",
            "a2c",
            "--env",
            "CartPole-v1",
            "--vectorization",
            "async",
            "--num-envs",
            "2",
            "--total-steps",
            "100000000",
            "--eval-episodes",
            "0",
            "--set",
            "log_interval=500",
            "--run-dir",
            str(run_dir),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a job in a terminal
    )
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "progress.csv").exists():  # training (and the workers) started
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        workers = [p for p in live_group_members(proc.pid) if p != proc.pid]
        assert len(workers) >= 2, "expected the two spawned env workers"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err
    assert "policy so far saved" in out
    assert (run_dir / "policy" / "policy.json").exists()
    assert "Traceback" not in err, err
    time.sleep(0.5)
    assert live_group_members(proc.pid) == set(), "worker processes outlived the run"


def test_first_ctrl_c_requests_a_stop_the_second_forces_it():
    from rlkit import interrupts

    with interrupts.graceful():
        interrupts.check()  # nothing requested yet
        os.kill(os.getpid(), signal.SIGINT)  # handled: only a request
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the second one interrupts at once
            time.sleep(1)
    interrupts.check()  # outside the block, the request is gone
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
