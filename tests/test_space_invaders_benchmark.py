"""Tests of the Space Invaders driver's carrying of unfinished runs (benchmarks/space_invaders.py).

A session's machine does not outlive it, so ``pack`` writes an unfinished run (its folder with
only the newest scheduled checkpoint) into an archive kept in git and ``unpack`` restores it on
the next machine. The run folders here are fakes: nothing trains.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def si(load_benchmark) -> ModuleType:
    return load_benchmark("space_invaders")


def fake_run(root: Path, name: str, checkpoints: list[int], steps: int, every: int = 1000) -> Path:
    """A run folder as the driver leaves it: progress, driver.json, checkpoints, a lock."""
    run = root / name
    (run / "tb").mkdir(parents=True)
    (run / "tb" / "events").write_bytes(b"tb")
    rows = ["time/env_steps,rollout/ep_rew_mean"]
    rows += [f"{s},{s / 100}" for s in range(500, steps + 1, 500)]
    (run / "progress.csv").write_text("\n".join(rows) + "\n")
    meta = {"run": name, "budget": 10_000, "checkpoint_every": every, "segments": []}
    meta["segments"].append({"start": 0, "end": None, "started": "then"})
    (run / "driver.json").write_text(json.dumps(meta))
    (run / "driver.lock").write_text("{}")
    digits = 9 if "_sb3_" in name else 12  # the SB3 child's names and rlkit's
    for step in checkpoints:
        folder = run / "checkpoints" / f"step_{step:0{digits}d}"
        (folder / "agent").mkdir(parents=True)
        (folder / "state.json").write_text(json.dumps({"step": step}))
        (folder / "agent" / "weights").write_bytes(bytes(100))
    return run


def inspect(si: ModuleType, root: Path, name: str):
    return si.inspect(si.spec_from_name(name), root)


def test_the_carried_checkpoint_is_the_newest_scheduled_one(si, tmp_path):
    # every 1000: 1003 and 2001 are scheduled (the first of their intervals), 2467 is a
    # Ctrl-C checkpoint in the same interval as 2001.
    fake_run(tmp_path, "a2c_rlkit_seed1", [1003, 2001, 2467], steps=2500)
    assert si.periodic_checkpoint(inspect(si, tmp_path, "a2c_rlkit_seed1")) == 2001
    # A Ctrl-C before the first scheduled one (interval 0) is no start to carry.
    fake_run(tmp_path, "a2c_rlkit_seed2", [640], steps=700)
    assert si.periodic_checkpoint(inspect(si, tmp_path, "a2c_rlkit_seed2")) is None


def test_pack_then_unpack_restores_the_run_from_its_scheduled_checkpoint(si, tmp_path):
    root, carry, other = tmp_path / "runs", tmp_path / "carry", tmp_path / "next_machine"
    fake_run(root, "a2c_sb3_seed1", [1003, 2001, 2467], steps=2500)
    assert si.main(["pack", "--root", str(root), "--carry", str(carry)]) == 0
    with tarfile.open(carry / "a2c_sb3_seed1.tar") as tar:
        names = set(tar.getnames())
    assert "a2c_sb3_seed1/checkpoints/step_000002001/state.json" in names
    assert not any("step_000001003" in n or "step_000002467" in n for n in names)
    assert "a2c_sb3_seed1/driver.lock" not in names
    assert {"a2c_sb3_seed1/progress.csv", "a2c_sb3_seed1/tb/events"} <= names

    assert si.main(["unpack", "--root", str(other), "--carry", str(carry)]) == 0
    info = inspect(si, other, "a2c_sb3_seed1")
    assert info.checkpoints == [2001]  # what `run` resumes from
    assert info.steps == 2500  # rows past the checkpoint are dropped by the resume itself
    carried = info.meta["carried"][-1]
    assert carried["step"] == 2001 and carried["dropped_after"] == 2500
    assert "unpacked" in carried and "packed" in carried
    # The open segment was closed at the steps the run had reached.
    assert info.meta["segments"][-1]["end"] == 2500


def test_unpack_leaves_an_existing_run_folder_alone(si, tmp_path, capsys):
    root, carry = tmp_path / "runs", tmp_path / "carry"
    fake_run(root, "a2c_rlkit_seed1", [1003], steps=1500)
    assert si.main(["pack", "--root", str(root), "--carry", str(carry)]) == 0
    (root / "a2c_rlkit_seed1" / "progress.csv").write_text("mine\n")
    assert si.main(["unpack", "--root", str(root), "--carry", str(carry)]) == 0
    assert (root / "a2c_rlkit_seed1" / "progress.csv").read_text() == "mine\n"
    assert "exists already" in capsys.readouterr().out


def test_pack_refuses_what_cannot_be_carried(si, tmp_path, monkeypatch, capsys):
    root, carry = tmp_path / "runs", tmp_path / "carry"
    fake_run(root, "a2c_rlkit_seed1", [640], steps=700)  # no scheduled checkpoint
    fake_run(root, "dueling_dqn_rlkit_seed1", [1001], steps=1200)
    monkeypatch.setattr(si, "CARRY_LIMIT_MB", 50 / 2**20)  # 50 bytes: "a replay buffer"
    assert si.main(["pack", "--root", str(root), "--carry", str(carry)]) == 1
    out = capsys.readouterr().out
    assert "a2c_rlkit_seed1: not packed: a2c_rlkit_seed1 has no scheduled checkpoint" in out
    assert "cannot be carried, let it finish on one machine" in out
    assert not list(carry.glob("*.tar"))


def test_pack_forgets_the_archive_of_a_run_that_finished(si, tmp_path):
    root, carry = tmp_path / "runs", tmp_path / "carry"
    run = fake_run(root, "a2c_rlkit_seed1", [1003], steps=1500)
    assert si.main(["pack", "--root", str(root), "--carry", str(carry)]) == 0
    assert (carry / "a2c_rlkit_seed1.tar").exists()
    (run / "results.json").write_text(json.dumps({"n_eval_episodes": 30, "mean_reward": 1.0}))
    assert si.main(["pack", "--root", str(root), "--carry", str(carry)]) == 0
    assert not (carry / "a2c_rlkit_seed1.tar").exists()


def test_unpack_refuses_an_archive_that_writes_outside_its_run(si, tmp_path):
    carry, root = tmp_path / "carry", tmp_path / "runs"
    carry.mkdir()
    evil = tmp_path / "evil.txt"
    evil.write_text("x")
    with tarfile.open(carry / "a2c_rlkit_seed1.tar", "w") as tar:
        tar.add(evil, arcname="a2c_rlkit_seed1/../../evil.txt")
    assert si.main(["unpack", "--root", str(root), "--carry", str(carry)]) == 2
    assert not (root / "a2c_rlkit_seed1").exists()


def test_segments_record_the_cpu_and_its_bfloat16_flags(si, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Chip A\nflags\t\t: sse avx2 amx_bf16\nmodel name\t: Chip A\n")
    assert si.cpu_text(str(info)) == "Chip A (amx_bf16)"
    info.write_text("model name\t: Chip B\nflags\t\t: sse avx2\n")
    assert si.cpu_text(str(info)) == "Chip B (no bfloat16 flags)"
    assert si.cpu_text(str(tmp_path / "missing")) == "unknown CPU (no bfloat16 flags)"


def copies_of_a_finished_run(results: Path, name: str) -> None:
    """What ``report`` commits for a finished run: progress, results and driver.json copies."""
    results.mkdir(parents=True, exist_ok=True)
    rows = ["time/env_steps,time/elapsed_s,rollout/ep_rew_mean", "500,10,1.5", "1000,20,2.5"]
    (results / f"{name}.csv").write_text("\n".join(rows) + "\n")
    res = {"n_eval_episodes": 30, "mean_reward": 7.0, "std_reward": 1.0}
    (results / f"{name}.results.json").write_text(json.dumps(res))
    meta = {"run": name, "budget": 1000, "segments": [{"start": 0, "end": 1000}]}
    (results / f"{name}.driver.json").write_text(json.dumps(meta))


def test_a_finished_run_whose_folder_is_gone_is_known_from_its_copies(si, tmp_path, capsys):
    # A new machine: no run folders, only the committed copies. `run` must not start the
    # finished run again, and `status` must show it complete with its final evaluation.
    root, results = tmp_path / "runs", tmp_path / "results"
    copies_of_a_finished_run(results, "a2c_rlkit_seed1")
    args = ["--root", str(root), "--results", str(results)]
    assert si.main(["run", "--runs", "a2c:rlkit:1,a2c:rlkit:2", "--dry-run", *args]) == 0
    out = capsys.readouterr().out
    assert f"a2c_rlkit_seed1: complete already (in {results})" in out
    assert "a2c_rlkit_seed2: would start" in out
    assert not (root / "a2c_rlkit_seed1").exists()
    assert si.main(["status", *args]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "a2c_rlkit_seed1 |" in line)
    assert "complete (copies in results/)" in row and "7.0 ± 1.0" in row
    # Without the final evaluation the copies say nothing is finished: it is started again.
    (results / "a2c_rlkit_seed1.results.json").write_text(json.dumps({"n_eval_episodes": 0}))
    assert si.main(["run", "--runs", "a2c:rlkit:1", "--dry-run", *args]) == 0
    assert "a2c_rlkit_seed1: would start" in capsys.readouterr().out


def test_report_keeps_driver_json_beside_the_other_copies(si, tmp_path):
    root, results = tmp_path / "runs", tmp_path / "results"
    fake_run(root, "a2c_rlkit_seed1", [1003], steps=1500)
    copied = si.copy_run_files(inspect(si, root, "a2c_rlkit_seed1"), results.mkdir() or results)
    assert "a2c_rlkit_seed1.driver.json" in copied
    assert json.loads((results / "a2c_rlkit_seed1.driver.json").read_text())["budget"] == 10_000


def test_rlkit_threads_reach_the_training_command(si, tmp_path, capsys):
    # Two runs on two shared cores want one TensorFlow thread each (rlkit's --threads).
    args = ["--root", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    one_thread = ["--dry-run", "--rlkit-threads", "1", *args]
    assert si.main(["run", "--runs", "a2c:rlkit:1", *one_thread]) == 0
    line = capsys.readouterr().out
    assert "rlkit.train --threads 1 --agent a2c" in line
    assert si.main(["run", "--runs", "a2c:rlkit:1", "--dry-run", *args]) == 0
    assert "--threads" not in capsys.readouterr().out  # default: TensorFlow's own
    run = tmp_path / "r"
    resume = si.rlkit_command(run, si.spec_from_name("a2c_rlkit_seed1"), 10, 5, True, threads=2)
    assert resume[resume.index("--threads") + 1] == "2" and "--resume" in resume
    seg = {"start": 0, "end": 10, "tf_threads": 1}
    assert "TF threads 1" in si.describe_segment(0, seg)
    assert "TF threads" not in si.describe_segment(0, {**seg, "tf_threads": "default"})
