"""Experiment tracking (``rlkit.tracking``, ``python -m rlkit.train --track``) in W&B's
offline mode: what a tracked run writes is read back from the offline run's record file.

Nothing here reaches the network: ``WANDB_MODE=offline`` with ``WANDB_DIR`` in a temporary
folder, or a fake ``wandb`` module for the tracker's own logic.
"""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

import rlkit
from rlkit import tracking, train
from rlkit.config import RunConfig
from rlkit.errors import MissingExtraError, RlkitError

wandb = pytest.importorskip("wandb")
from google.protobuf.message import DecodeError  # noqa: E402
from wandb.proto import wandb_internal_pb2  # noqa: E402

REPO = Path(rlkit.__file__).resolve().parents[1]
ENV = "CartPole-v1"


# -- reading an offline run back -------------------------------------------------------------
def read_records(path: Path) -> list[Any]:
    """The protobuf records of a ``run-<id>.wandb`` file.

    The file is W&B's transaction log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0),
    then LevelDB-style 32 KiB blocks of chunks, each with a 7-byte header (CRC32C, length as
    little-endian uint16, type: 1 full, 2 first, 3 middle, 4 last); a block's tail shorter
    than a chunk header is zero padding.
    """
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"not a W&B record file: {data[:7]!r}"
    block, pos, pending, payloads = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # padding to the end of the block
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            payloads.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            payloads.append(pending + chunk)
    return [wandb_internal_pb2.Record.FromString(p) for p in payloads]


def _items(items: Any) -> dict[str, Any]:
    """``{key: value}`` of W&B history/summary/config items (nested keys as nested dicts)."""
    out: dict[str, Any] = {}
    for item in items:
        keys = list(item.nested_key) or [item.key]
        target = out
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = json.loads(item.value_json)
    return out


def finished_records(folder: Path, timeout: float = 60.0) -> list[Any]:
    """The records of the offline run in ``folder`` once they end with the run's exit.

    wandb-core writes the file from its own process and may still be flushing it when
    ``finish()`` has returned (it was 7 bytes, the header alone, right after one test run):
    read it until the exit record is there.
    """
    (record_file,) = folder.glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = read_records(record_file)
            if records and records[-1].WhichOneof("record_type") == "exit":
                return records
        except DecodeError:  # a chunk cut off in the middle of a write
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{record_file} has no exit record after {timeout} s")
        time.sleep(0.5)


class OfflineRun:
    """What an offline W&B run folder holds: run record, config, history, summary, exit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        records = finished_records(folder)
        by_type: dict[str, list[Any]] = {}
        for record in records:
            by_type.setdefault(record.WhichOneof("record_type"), []).append(record)
        (run_record,) = by_type["run"]
        self.run = run_record.run
        self.config = _items(self.run.config.update)
        for record in by_type.get("config", []):
            self.config.update(_items(record.config.update))
        self.config.pop("_wandb", None)
        self.history = [_items(r.history.item) for r in by_type.get("history", [])]
        self.summary: dict[str, Any] = {}
        for record in by_type.get("summary", []):
            self.summary.update(_items(record.summary.update))
        self.exit_codes = [r.exit.exit_code for r in by_type.get("exit", [])]
        self.metrics = [r.metric for r in by_type.get("metric", [])]

    def values(self, key: str) -> list[tuple[int, Any]]:
        """``(global_step, value)`` of every history row holding ``key``."""
        return [(row.get("global_step"), row[key]) for row in self.history if key in row]

    def media(self, key: str) -> list[Path]:
        """The files logged under ``key`` (videos, tables), which must exist in the run."""
        paths = [self.folder / "files" / value["path"] for _, value in self.values(key)]
        assert all(p.is_file() for p in paths), paths
        return paths


def offline_runs(wandb_dir: Path) -> list[OfflineRun]:
    """The offline runs under ``WANDB_DIR``, oldest first."""
    return [OfflineRun(f) for f in sorted((wandb_dir / "wandb").glob("offline-run-*"))]


def offline_env(monkeypatch: pytest.MonkeyPatch, wandb_dir: Path) -> None:
    wandb_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("WANDB_MODE", "offline")  # never the network
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


# -- one tracked CLI run, stopped by Ctrl-C and resumed ----------------------------------------
TRACKED_ARGS = [
    *("--agent", "a2c", "--env", ENV, "--total-steps", "600", "--num-envs", "2", "--quiet"),
    *("--eval-every", "200", "--eval-episodes", "2", "--final-eval-episodes", "3"),
    *("--checkpoint-every", "300", "--set", "hidden_sizes=[16]", "--set", "log_interval=100"),
    *("--set", "video_every=200", "--track", "--wandb-tags", "smoke", "cartpole", "smoke"),
    *("--wandb-group", "seeds"),
]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A ``--track`` run interrupted (Ctrl-C) after its first checkpoint, then resumed with
    ``--resume ... --track --video`` to the end; both W&B runs read back."""
    root = tmp_path_factory.mktemp("tracked")
    run_dir, wandb_dir = root / "run", root / "wandb_dir"
    original = tracking.WandbTracker.on_checkpoint

    def ctrl_c_after_the_first_checkpoint(self, env_steps, path):
        original(self, env_steps, path)
        raise KeyboardInterrupt

    had_service = "WANDB_SERVICE" in os.environ
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        offline_env(mp, wandb_dir)
        mp.setattr(tracking.WandbTracker, "on_checkpoint", ctrl_c_after_the_first_checkpoint)
        first_rc = train.main([*TRACKED_ARGS, "--run-dir", str(run_dir)])
        first_id = json.loads((run_dir / tracking.RUN_ID_FILE).read_text())["id"]
        mp.setattr(tracking.WandbTracker, "on_checkpoint", original)
        second_rc = train.main(["--resume", str(run_dir), "--track", "--video", "--quiet"])
        patched_after = list(wandb.patched["tensorboard"])
        runs = offline_runs(wandb_dir)
    # Stop W&B's service process, which would otherwise live on for the rest of the session.
    wandb.teardown()
    if not had_service:
        os.environ.pop("WANDB_SERVICE", None)
    return {
        "run_dir": run_dir,
        "rc": (first_rc, second_rc),
        "first_id": first_id,
        "runs": runs,
        "patched_after": patched_after,
    }


def test_interrupted_run_ends_its_wandb_run_with_the_exit_code(tracked: dict) -> None:
    assert tracked["rc"] == (130, 0)
    first, second = tracked["runs"]
    assert first.exit_codes == [130]  # 128 + SIGINT, as the CLI exits
    assert second.exit_codes == [0]
    # The TensorBoard patch is undone, so later writers in this process are left alone.
    assert tracked["patched_after"] == []


def test_resume_continues_the_same_wandb_run(tracked: dict) -> None:
    first, second = tracked["runs"]
    saved = json.loads((tracked["run_dir"] / tracking.RUN_ID_FILE).read_text())
    assert saved["id"] == tracked["first_id"] == first.run.run_id == second.run.run_id
    assert saved["project"] == first.run.project == second.run.project == "rlkit"
    assert second.folder.name.endswith(f"-{saved['id']}")
    first_steps = [s for s, _ in first.values("train/policy_loss")]
    second_steps = [s for s, _ in second.values("train/policy_loss")]
    assert first_steps and second_steps
    # The second process starts from the checkpoint (about 300 env steps), not from zero.
    assert 300 <= min(second_steps) and max(second_steps) >= 600
    assert max(first_steps) < 400


def test_config_is_the_runs_config_yaml(tracked: dict) -> None:
    resolved = yaml.safe_load((tracked["run_dir"] / "config.yaml").read_text())
    for run in tracked["runs"]:
        assert run.config == resolved
    assert resolved["agent"] == "a2c" and resolved["env"] == ENV
    assert resolved["hidden_sizes"] == [16] and resolved["video_every"] == 200
    first = tracked["runs"][0]
    assert list(first.run.tags) == ["smoke", "cartpole"]  # repeats dropped
    assert first.run.run_group == "seeds"
    assert first.run.display_name == "a2c-run"


def test_tensorboard_scalars_and_evaluations_reach_wandb(tracked: dict) -> None:
    first, second = tracked["runs"]
    # What the Logger writes to TensorBoard, synced by W&B against global_step (env steps).
    for key in ("train/policy_loss", "train/value_loss", "rollout/ep_rew_mean", "time/fps"):
        assert second.values(key), key
    # The same numbers as progress.csv (from both processes: the CSV keeps the first one's
    # rows up to the checkpoint).
    synced = dict(first.values("train/value_loss") + second.values("train/value_loss"))
    with open(tracked["run_dir"] / "progress.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["train/value_loss"]]
    written = {int(r["time/env_steps"]): float(r["train/value_loss"]) for r in rows}
    assert len(written) >= 5 and max(written) >= 600
    assert {step: synced[step] for step in written} == pytest.approx(written)
    # Evaluations: mean and std through TensorBoard, the rest of the row logged directly,
    # at the same env steps; all rows as a table at the end.
    evaluations = [s for s, _ in first.values("eval/mean_reward")]
    evaluations += [s for s, _ in second.values("eval/mean_reward")]
    assert len(evaluations) == 3 and all(s >= 200 for s in evaluations)
    direct = [s for s, _ in first.values("eval/episodes") + second.values("eval/episodes")]
    assert direct == evaluations
    assert {v for _, v in second.values("eval/episodes")} == {2}
    (table,) = second.media("eval/table")
    table_json = json.loads(table.read_text())
    assert "mean_reward" in table_json["columns"] and len(table_json["data"]) == 3
    assert any(m.glob_name == "*" and m.step_metric == "global_step" for m in second.metrics)


def test_results_and_totals_go_to_the_summary(tracked: dict) -> None:
    results = json.loads((tracked["run_dir"] / "results.json").read_text())
    summary = tracked["runs"][1].summary
    for key in ("mean_reward", "std_reward", "n_eval_episodes", "train_env_steps"):
        assert summary[key] == pytest.approx(results[key]), key
    assert summary["env_id"] == ENV and summary["agent"] == "a2c"
    assert "returns" not in summary
    assert summary["env_steps"] == results["train_env_steps"] >= 600
    assert summary["run_dir"] == str(tracked["run_dir"].resolve())
    saved = tracked["runs"][1].folder / "files" / "results.json"
    assert json.loads(saved.read_text()) == results


def test_videos_are_logged(tracked: dict) -> None:
    first, second = tracked["runs"]
    gifs = sorted((tracked["run_dir"] / "videos").glob("*.gif"))
    assert len(gifs) >= 3  # at about 200, 400 and 600 env steps (and where it resumed)
    logged_first, logged_second = first.media("video/evaluation"), second.media("video/evaluation")
    # Each GIF once, by the process that recorded it, at the env steps in its name.
    assert len(logged_first) == 1 and len(logged_first) + len(logged_second) == len(gifs)
    assert sorted(p.read_bytes() for p in logged_first + logged_second) == sorted(
        p.read_bytes() for p in gifs
    )
    steps = [s for s, _ in first.values("video/evaluation") + second.values("video/evaluation")]
    assert steps == [int(p.stem.split("_")[1]) for p in gifs]
    (final,) = second.media("video/final_episode")
    assert final.read_bytes() == (tracked["run_dir"] / "final_episode.gif").read_bytes()
    assert not first.values("video/final_episode")


# -- input errors: exit code 2 before anything is trained --------------------------------------
BAD_FLAGS = [
    (["--wandb-project", "x"], "--wandb-project needs --track"),
    (["--wandb-tags", "a"], "--wandb-tags needs --track"),
    (["--track", "--wandb-tags", "ok", " "], "W&B tags must have 1 to 64 characters"),
    (["--track", "--wandb-tags", "t" * 65], "65 characters"),
    (["--track", "--wandb-project", "a/b"], "--wandb-project 'a/b' may not contain"),
    (["--track", "--wandb-entity", "my team"], "--wandb-entity 'my team' may not contain"),
    (["--track", "--wandb-group", ""], "--wandb-group must have 1 to 128 characters"),
]


@pytest.mark.parametrize(("extra", "fragment"), BAD_FLAGS, ids=lambda v: " ".join(v)[:40])
def test_bad_tracking_flags_exit_2(
    extra: list[str], fragment: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    offline_env(monkeypatch, tmp_path / "wandb_dir")
    argv = ["--agent", "a2c", "--env", ENV, "--run-dir", str(tmp_path / "run"), *extra]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wandb_dir"]
    assert list((tmp_path / "wandb_dir").iterdir()) == []


_WITHOUT_WANDB = """
import sys
sys.modules["wandb"] = None  # as if not installed
from rlkit.train import main
code = main(sys.argv[1:])
assert "tensorflow" not in sys.modules, "TensorFlow was imported before the check"
sys.exit(code)
"""


def test_track_without_wandb_exits_2_naming_the_extra(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path),
    }
    argv = ["--agent", "a2c", "--env", ENV, "--run-dir", str(tmp_path / "run"), "--track"]
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_WANDB, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "pip install 'rlkit[wandb]'" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no run folder, no W&B folder


def test_tracker_without_wandb_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'rlkit\[wandb\]'"):
        tracking.WandbTracker()


def test_import_rlkit_train_does_not_import_wandb() -> None:
    code = "import sys, rlkit, rlkit.train, rlkit.tracking; assert 'wandb' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


def test_help_lists_the_tracking_flags() -> None:
    text = train.build_parser().format_help()
    for flag in ("--track", "--wandb-project", "--wandb-entity", "--wandb-tags", "--wandb-group"):
        assert flag in text
    args = train.build_parser().parse_args(["--wandb-tags", "a", "b", "--wandb-tags", "c"])
    assert args.wandb_tags == ["a", "b", "c"] and args.track is False


# -- the tracker's own logic, on a fake wandb ----------------------------------------------
class FakeConfig:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def update(self, values: dict[str, Any], allow_val_change: bool = False) -> None:
        self.data.update(values)


class FakeRun:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.id = kwargs.get("id") or "fake123"
        self.project, self.entity = kwargs["project"], kwargs.get("entity")
        self.config = FakeConfig()
        self.summary: dict[str, Any] = {}
        self.logged: list[dict[str, Any]] = []
        self.exit_code: int | None = None
        self.dir = kwargs.pop("fake_dir")
        self.saved: list[str] = []

    def define_metric(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log(self, row: dict[str, Any]) -> None:
        self.logged.append(row)

    def save(self, path: str, **kwargs: Any) -> None:
        self.saved.append(path)

    def finish(self, exit_code: int | None = None) -> None:
        self.exit_code = exit_code


def fake_wandb(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, init_error: Exception | None = None
) -> Any:
    class Error(Exception):
        pass

    module = types.ModuleType("wandb")
    module.errors = types.SimpleNamespace(Error=Error)
    module.patched = {"tensorboard": []}
    module.runs = []

    def init(**kwargs: Any) -> FakeRun:
        if init_error is not None:
            raise Error(str(init_error))
        folder = tmp_path / f"fake_wandb_run_{len(module.runs)}"
        folder.mkdir()
        module.runs.append(FakeRun(**kwargs, fake_dir=str(folder)))
        return module.runs[-1]

    module.init = init
    module.Settings = lambda **kwargs: kwargs
    module.Video = lambda path, format=None: ("video", path)
    module.Table = lambda columns, data: ("table", columns, data)
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


def test_without_a_run_dir_the_tracker_logs_updates_and_evaluations_itself(
    tmp_path: Path, monkeypatch
) -> None:
    from rlkit.agents import A2C, A2CConfig
    from rlkit.experiment import learn

    fake = fake_wandb(monkeypatch, tmp_path)
    import gymnasium as gym

    env = gym.make(ENV)
    agent = A2C(env.observation_space, env.action_space, A2CConfig(hidden_sizes=(8,)), seed=0)
    run = RunConfig(total_steps=400, num_envs=2, eval_every=200, eval_episodes=1)
    with tracking.WandbTracker(log_every=100, tags=["a", "a", "b"]) as tracker:
        result = learn(agent, ENV, run, callbacks=[tracker])
    (wandb_run,) = fake.runs
    assert wandb_run.kwargs["sync_tensorboard"] is False and wandb_run.kwargs["resume"] is None
    assert wandb_run.kwargs["tags"] == ["a", "b"] and wandb_run.kwargs["project"] == "rlkit"
    assert wandb_run.config.data["agent"] == "a2c"
    assert wandb_run.config.data["hidden_sizes"] == [8]
    updates = [row for row in wandb_run.logged if "train/policy_loss" in row]
    steps = [row["global_step"] for row in updates]
    assert len(updates) >= 3 and steps == sorted(steps) and steps[-1] == result.env_steps
    evaluations = [row["global_step"] for row in wandb_run.logged if "eval/mean_reward" in row]
    assert evaluations == [row["env_steps"] for row in result.evaluations]
    assert wandb_run.summary["env_steps"] == result.env_steps
    assert wandb_run.exit_code == 0


def test_tracker_resume_reads_the_saved_id(tmp_path: Path, monkeypatch, capsys) -> None:
    fake = fake_wandb(monkeypatch, tmp_path)
    tracking.WandbTracker(tmp_path, project="p1", entity="me").finish()
    saved = json.loads((tmp_path / tracking.RUN_ID_FILE).read_text())
    assert saved == {"id": "fake123", "project": "p1", "entity": "me"}
    (tmp_path / tracking.RUN_ID_FILE).write_text(json.dumps({**saved, "id": "abc"}))
    tracking.WandbTracker(tmp_path, resume=True).finish(exit_code=1)
    resumed = fake.runs[-1].kwargs
    assert (resumed["id"], resumed["resume"]) == ("abc", "allow")
    assert (resumed["project"], resumed["entity"]) == ("p1", "me")  # the saved ones
    assert fake.runs[-1].exit_code == 1
    # A new run into the same folder (not resumed) gets a new W&B run.
    tracking.WandbTracker(tmp_path).finish()
    assert fake.runs[-1].kwargs["id"] is None
    # Resuming a run that was never tracked starts a new W&B run, and says so.
    tracking.WandbTracker(tmp_path / "untracked", resume=True).finish()
    assert fake.runs[-1].kwargs["id"] is None
    assert "no W&B run to continue" in capsys.readouterr().out
    (tmp_path / tracking.RUN_ID_FILE).write_text("{not json")
    with pytest.raises(RlkitError, match="not readable JSON"):
        tracking.WandbTracker(tmp_path, resume=True)


def test_tracker_that_cannot_start_is_an_input_error(tmp_path: Path, monkeypatch) -> None:
    fake_wandb(monkeypatch, tmp_path, init_error=RuntimeError("api_key not configured"))
    with pytest.raises(RlkitError, match="api_key not configured.*WANDB_MODE=offline"):
        tracking.WandbTracker(tmp_path)


@pytest.mark.parametrize(
    ("error", "code"),
    [(None, 0), (KeyboardInterrupt(), 130), (RlkitError("x"), 2), (ValueError(), 1)],
)
def test_exit_codes(error: BaseException | None, code: int) -> None:
    assert tracking.exit_code_for(error) == code


def test_readme_example_runs(tmp_path: Path, monkeypatch) -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Tracking", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert 'run_dir="runs/tracked",' in block
    fake = fake_wandb(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    quick = 'run_dir="runs/tracked", total_steps=200, overrides={"final_eval_episodes": 2},'
    exec(compile(block.replace('run_dir="runs/tracked",', quick), "README", "exec"), {})
    (wandb_run,) = fake.runs
    assert wandb_run.kwargs["tags"] == ["demo"] and wandb_run.kwargs["sync_tensorboard"]
    assert wandb_run.config.data["agent"] == "a2c" and wandb_run.config.data["total_steps"] == 200
    results = json.loads((tmp_path / "runs" / "tracked" / "results.json").read_text())
    assert wandb_run.summary["mean_reward"] == results["mean_reward"]
    assert wandb_run.exit_code == 0 and len(wandb_run.saved) == 1


def test_without_tensorboard_the_tracker_logs_itself(tmp_path: Path, monkeypatch) -> None:
    fake = fake_wandb(monkeypatch, tmp_path)
    find_spec = tracking.importlib.util.find_spec
    monkeypatch.setattr(
        tracking.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "tensorboard" else find_spec(name, *args),
    )
    tracker = tracking.WandbTracker(tmp_path)
    assert tracker.sync_tensorboard is False
    assert fake.runs[-1].kwargs["sync_tensorboard"] is False
    tracker.finish()
    with pytest.raises(MissingExtraError, match="tensorboard"):
        tracking.WandbTracker(tmp_path, sync_tensorboard=True)
