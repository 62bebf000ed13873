"""Sharing a trained agent: the Hub folder's layout and card (offline), the upload and the
download with huggingface_hub's network functions replaced (no test reaches the network),
and a downloaded repository whose extra files would run code if anything unpickled them."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from rlkit import export, train
from rlkit.errors import MissingExtraError, RlkitError
from rlkit.policy_io import load_policy

hf = pytest.importorskip("huggingface_hub", reason="the hub extra: pip install 'rlkit[hub]'")

REPO = Path(__file__).resolve().parents[1]
ENV = "CartPole-v1"
# The replay is an MP4 with imageio-ffmpeg (in the test and hub extras), else a GIF.
VIDEO = "replay.mp4" if importlib.util.find_spec("imageio_ffmpeg") else "replay.gif"
LAYOUT = {
    "README.md",
    "results.json",
    "config.yaml",
    "policy.json",
    "policy.weights.h5",
    "saved_model",
    VIDEO,
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real (tiny) DQN run on CartPole, with its final evaluation in results.json."""
    path = tmp_path_factory.mktemp("hub") / "run"
    argv = ["--agent", "dqn", "--env", ENV, "--total-steps", "300", "--set", "learning_starts=100"]
    argv += ["--set", "hidden_sizes=[16]", "--final-eval-episodes", "3"]
    assert train.main([*argv, "--run-dir", str(path), "--quiet"]) == 0
    return path


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """huggingface_hub's network entry points fail the test unless a test replaces them."""

    def network(*args, **kwargs):
        raise AssertionError("a test reached for the network")

    monkeypatch.setattr(hf, "HfApi", network)
    monkeypatch.setattr(hf, "snapshot_download", network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# -- the folder -----------------------------------------------------------------------------
def test_hub_folder_layout_and_model_card(run_dir, tmp_path, capsys):
    out = tmp_path / "hub"
    assert export.main([str(run_dir), "--hub", str(out)]) == 0
    assert "Hub folder" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == LAYOUT
    results = json.loads((run_dir / "results.json").read_text())
    assert json.loads((out / "results.json").read_text()) == results
    assert (out / "config.yaml").read_bytes() == (run_dir / "config.yaml").read_bytes()
    text = (out / "README.md").read_text()
    front = front_matter(text)
    assert front["library_name"] == "rlkit"
    assert {"reinforcement-learning", "deep-reinforcement-learning", "dqn", ENV} <= set(
        front["tags"]
    )
    entry = front["model-index"][0]
    result = entry["results"][0]
    assert result["task"]["type"] == "reinforcement-learning"
    assert result["dataset"] == {"name": ENV, "type": ENV}
    metric = result["metrics"][0]
    assert metric["type"] == "mean_reward" and metric["name"] == "mean_reward"
    assert metric["value"] == f"{results['mean_reward']:.2f} +/- {results['std_reward']:.2f}"
    assert f"[{VIDEO}]({VIDEO})" in text
    # The replay: the greedy episode (an MP4's sides padded to multiples of 16).
    import imageio.v3 as iio

    frames = iio.imread(out / VIDEO)
    assert frames.ndim == 4 and len(frames) >= 1
    if VIDEO == "replay.mp4":
        assert frames.shape[1] % 16 == 0 and frames.shape[2] % 16 == 0
    # The folder's policy files rebuild the run's policy.
    obs = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    np.testing.assert_array_equal(load_policy(out)(obs), load_policy(run_dir)(obs))


def test_export_again_gif_without_ffmpeg_and_no_video(run_dir, tmp_path, monkeypatch):
    out = tmp_path / "hub"
    assert export.main([str(run_dir), "--hub", str(out)]) == 0
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(  # as if imageio-ffmpeg were not installed
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "imageio_ffmpeg" else find_spec(name, *a),
    )
    assert export.main([str(run_dir), "--hub", str(out)]) == 0  # the same folder again
    assert {p.name for p in out.iterdir()} == LAYOUT - {VIDEO} | {"replay.gif"}
    assert "[replay.gif](replay.gif)" in (out / "README.md").read_text()
    assert export.main([str(run_dir), "--hub", str(out), "--no-video"]) == 0
    assert {p.name for p in out.iterdir()} == LAYOUT - {VIDEO}
    assert "## Replay" not in (out / "README.md").read_text()


def test_an_env_that_cannot_render_is_named_in_the_card(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # CartPole renders with pygame
    out = tmp_path / "hub"
    assert export.main([str(run_dir), "--hub", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == LAYOUT - {VIDEO}
    text = (out / "README.md").read_text()
    assert "No replay video: rendering CartPole-v1 needs more packages" in text
    assert "pygame" in text


def test_an_env_without_a_renderer_is_named_in_the_card(tmp_path):
    from rlkit.envs.testing import COUNTING_ENV_ID, register_fake_envs
    from rlkit.networks import build_network
    from rlkit.policy_io import save_policy

    register_fake_envs()
    run_dir = tmp_path / "run"
    spec = {"kind": "q", "obs_shape": [4, 4], "num_actions": 2, "hidden_sizes": [8]}
    save_policy(run_dir / "policy", build_network(spec), agent="dqn", env_id=COUNTING_ENV_ID)
    out = tmp_path / "hub"
    assert export.main([str(run_dir), "--hub", str(out)]) == 0
    text = (out / "README.md").read_text()
    # gymnasium refuses render_mode for an env that declares no render modes.
    assert f"No replay video: recording {COUNTING_ENV_ID} failed (TypeError: " in text
    assert "render_mode" in text
    assert front_matter(text)["model-index"][0]["results"][0]["metrics"][0]["value"] == "unknown"
    assert not (out / "results.json").exists() and not (out / "config.yaml").exists()


def test_best_policy_gets_no_results_of_the_final_one(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    shutil.copytree(run / "policy", run / "best_policy")
    out = tmp_path / "hub"
    assert export.main([str(run), "--hub", str(out), "--best", "--no-video"]) == 0
    assert not (out / "results.json").exists()
    text = (out / "README.md").read_text()
    assert "Evaluation: none here (the run's results.json evaluates its final policy" in text
    assert front_matter(text)["model-index"][0]["results"][0]["metrics"][0]["value"] == "unknown"


def test_hub_folder_errors(run_dir, tmp_path, capsys):
    out = tmp_path / "hub"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert export.main([str(run_dir), "--hub", str(out)]) == 2
    assert "holds files an export does not write (notes.txt)" in one_error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert export.main([str(tmp_path / "nothing"), "--hub", str(tmp_path / "h2")]) == 2
    assert "no saved policy" in one_error_line(capsys)
    for argv in (["--hub", "x", "--out", "y"], ["--no-video"], ["--private", "--hub", "x"]):
        with pytest.raises(SystemExit) as info:
            export.main([str(run_dir), *argv])
        assert info.value.code == 2
    capsys.readouterr()


# -- --push, with huggingface_hub's HfApi replaced ---------------------------------------------
class RepoUrl(str):
    """What HfApi.create_repo returns: the URL, with the resolved id."""

    def __new__(cls, repo_id: str) -> RepoUrl:
        url = super().__new__(cls, f"https://huggingface.co/{repo_id}")
        url.repo_id = repo_id
        return url


def fake_api(calls: list, fail: Exception | None = None):
    class FakeApi:
        def __init__(self, *args, **kwargs):
            pass

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))
            return RepoUrl(repo_id if "/" in repo_id else f"me/{repo_id}")

        def upload_folder(self, **kwargs):
            if fail is not None:
                raise fail
            files = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
            calls.append(("upload_folder", kwargs, files))

    return FakeApi


def http_error(cls: type, status: int) -> Exception:
    response = SimpleNamespace(status_code=status, headers={}, request=None)
    return cls(f"{status} Client Error", response=response)


def test_push_creates_the_repo_and_uploads_the_folder(run_dir, tmp_path, monkeypatch, capsys):
    calls: list = []
    monkeypatch.setattr(hf, "get_token", lambda: "hf_test")
    monkeypatch.setattr(hf, "HfApi", fake_api(calls))
    out = tmp_path / "hub"
    argv = [str(run_dir), "--hub", str(out), "--push", "someone/dqn-CartPole-v1", "--private"]
    assert export.main(argv) == 0
    assert "pushed to https://huggingface.co/someone/dqn-CartPole-v1" in capsys.readouterr().out
    (_, repo_id, create), (_, upload, files) = calls
    assert repo_id == "someone/dqn-CartPole-v1"
    assert create["exist_ok"] is True and create["private"] is True
    assert create["repo_type"] == "model"
    assert upload["repo_id"] == "someone/dqn-CartPole-v1"
    assert Path(upload["folder_path"]) == out and set(files) == LAYOUT
    card = (out / "README.md").read_text()
    assert 'rlkit.load_from_hub("someone/dqn-CartPole-v1")' in card
    # A bare name goes to the logged-in user's namespace; the folder defaults to RUN/hub.
    calls.clear()
    assert export.main([str(run_dir), "--push", "dqn-cartpole", "--no-video"]) == 0
    assert calls[1][1]["repo_id"] == "me/dqn-cartpole"
    assert Path(calls[1][1]["folder_path"]) == run_dir / "hub"
    shutil.rmtree(run_dir / "hub")


@pytest.mark.parametrize(
    "case",
    [
        "no package",
        "not logged in",
        "bad repo id",
        "no network",
        "no network (httpx)",
        "token refused",
        "server error",
        "another failure",
    ],
)
def test_push_failures_are_one_line_exit_2(case, run_dir, tmp_path, monkeypatch, capsys):
    calls: list = []
    monkeypatch.setattr(hf, "get_token", lambda: "hf_test")
    repo_id, fragment, fail = "someone/dqn-cartpole", "", None
    if case == "no package":
        monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import raises ImportError
        fragment = "needs huggingface_hub: pip install 'rlkit[hub]'"
    elif case == "not logged in":
        monkeypatch.setattr(hf, "get_token", lambda: None)
        fragment = "needs a login: run `hf auth login`"
    elif case == "bad repo id":
        repo_id, fragment = "someone/../etc", "is not a Hugging Face Hub repository id"
    elif case == "no network":
        fail, fragment = ConnectionError("[Errno -3] name resolution"), "cannot reach the Hugging"
    elif case == "no network (httpx)":  # huggingface_hub >= 1.0: httpx errors, not OSErrors
        connect_error = type("ConnectError", (Exception,), {"__module__": "httpx"})
        fail, fragment = connect_error("[Errno -2] Name or service not known"), "cannot reach"
    elif case == "another failure":
        fail, fragment = TypeError("unexpected keyword"), "failed: TypeError: unexpected keyword"
    elif case == "token refused":
        fail, fragment = http_error(hf.errors.HfHubHTTPError, 401), "refused the token (HTTP 401)"
    else:
        fail, fragment = http_error(hf.errors.HfHubHTTPError, 500), "answered HTTP 500"
    monkeypatch.setattr(hf, "HfApi", fake_api(calls, fail))
    out = tmp_path / "hub"
    assert export.main([str(run_dir), "--hub", str(out), "--push", repo_id, "--no-video"]) == 2
    line = one_error_line(capsys)
    assert fragment in line, line
    if case in ("no package", "not logged in", "bad repo id"):
        assert not out.exists() and calls == []  # refused before any work


# -- load_from_hub, with snapshot_download replaced -----------------------------------------
class Payload:
    """Unpickling this creates ``marker``: proof that code from the download ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture
def hub_repo(run_dir, tmp_path) -> Path:
    """A downloaded repository: an exported folder, plus files that carry code."""
    import keras

    repo = tmp_path / "snapshot"
    assert export.main([str(run_dir), "--hub", str(repo), "--no-video"]) == 0
    marker = tmp_path / "payload_ran"
    payload = pickle.dumps(Payload(marker))
    for name in ("policy.pkl", "agent.pickle", "data.pt", "weights.npy"):
        (repo / name).write_bytes(payload)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2.0)])
    model.save(repo / "policy.keras")
    # Both are live: unpickling runs the payload, and Keras' safe mode refuses the Lambda.
    pickle.loads(payload)
    assert marker.exists()
    marker.rmdir()
    with pytest.raises(ValueError, match="Lambda|lambda|unsafe"):
        keras.saving.load_model(repo / "policy.keras", safe_mode=True)
    return repo


def fake_snapshot(folder: Path, calls: list):
    def snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(folder)  # the whole folder, whatever the patterns asked for

    return snapshot_download


def test_load_from_hub_reads_only_json_and_weights(hub_repo, run_dir, monkeypatch):
    import rlkit

    calls: list = []
    monkeypatch.setattr(hf, "snapshot_download", fake_snapshot(hub_repo, calls))
    policy = rlkit.load_from_hub("someone/dqn-CartPole-v1", revision="v1")
    obs = np.random.default_rng(1).standard_normal((16, 4)).astype(np.float32)
    np.testing.assert_array_equal(policy(obs), load_policy(run_dir)(obs))
    assert not (hub_repo.parent / "payload_ran").exists()
    ((repo_id, kwargs),) = calls
    assert repo_id == "someone/dqn-CartPole-v1" and kwargs["revision"] == "v1"
    # Only the policy files, the card and the results are asked for: no pickle, no model
    # file, not even the SavedModel.
    patterns = kwargs["allow_patterns"]
    assert "policy.json" in patterns and "policy.weights.h5" in patterns
    downloaded = {"policy.json", "policy.weights.h5", "README.md", "results.json", "config.yaml"}
    for name in os.listdir(hub_repo):
        assert any(fnmatch.fnmatch(name, p) for p in patterns) == (name in downloaded), name


@pytest.mark.parametrize("planted", ["policy.pkl", "policy.keras"])
def test_code_carrying_weights_are_refused(planted, hub_repo, monkeypatch):
    """A repository whose policy.weights.h5 is really a pickle or a Keras model file."""
    from rlkit.hub import load_from_hub

    shutil.copy(hub_repo / planted, hub_repo / "policy.weights.h5")
    monkeypatch.setattr(hf, "snapshot_download", fake_snapshot(hub_repo, []))
    with pytest.raises(RlkitError, match="is not a weights file rlkit can read"):
        load_from_hub("someone/evil")
    assert not (hub_repo.parent / "payload_ran").exists()


def test_a_crafted_description_is_refused_before_building(hub_repo, monkeypatch):
    from rlkit.hub import load_from_hub

    meta = json.loads((hub_repo / "policy.json").read_text())
    meta["network"]["hidden_sizes"] = [4_000_000_000]
    (hub_repo / "policy.json").write_text(json.dumps(meta))
    monkeypatch.setattr(hf, "snapshot_download", fake_snapshot(hub_repo, []))
    with pytest.raises(RlkitError, match=r"network.hidden_sizes\[0\] must be from 1 to 65,536"):
        load_from_hub("someone/huge")


@pytest.mark.parametrize(
    "case", ["no package", "bad repo id", "not found", "gated", "offline", "no network", "empty"]
)
def test_load_from_hub_failures_are_one_clear_error(case, tmp_path, monkeypatch):
    from rlkit.hub import load_from_hub

    def failing(error: Exception):
        def snapshot_download(repo_id, **kwargs):
            raise error

        return snapshot_download

    repo_id = "someone/dqn-cartpole"
    if case == "no package":
        monkeypatch.setitem(sys.modules, "huggingface_hub", None)
        expected, fragment = MissingExtraError, "pip install 'rlkit[hub]'"
    elif case == "bad repo id":
        repo_id, expected, fragment = "a/b/c", RlkitError, "not a Hugging Face Hub repository id"
    elif case == "not found":
        error = http_error(hf.errors.RepositoryNotFoundError, 404)
        monkeypatch.setattr(hf, "snapshot_download", failing(error))
        expected, fragment = RlkitError, "no such repository on the Hugging Face Hub"
    elif case == "gated":
        error = http_error(hf.errors.GatedRepoError, 403)
        monkeypatch.setattr(hf, "snapshot_download", failing(error))
        expected, fragment = RlkitError, "the repository is gated"
    elif case == "offline":
        error = hf.errors.LocalEntryNotFoundError("cannot find the requested files")
        monkeypatch.setattr(hf, "snapshot_download", failing(error))
        expected, fragment = RlkitError, "cannot reach the Hugging Face Hub (no network?)"
    elif case == "no network":
        monkeypatch.setattr(hf, "snapshot_download", failing(ConnectionError("timed out")))
        expected, fragment = RlkitError, "cannot reach the Hugging Face Hub (ConnectionError"
    else:
        (tmp_path / "README.md").write_text("a model of another library")
        monkeypatch.setattr(hf, "snapshot_download", fake_snapshot(tmp_path, []))
        expected, fragment = RlkitError, "holds no rlkit policy"
    with pytest.raises(expected) as info:
        load_from_hub(repo_id)
    message = str(info.value)
    assert fragment in message and "\n" not in message, message


def test_import_rlkit_stays_cheap_with_load_from_hub():
    code = (
        "import sys, rlkit; f = rlkit.load_from_hub; "
        "assert callable(f) and f.__module__ == 'rlkit.hub'; "
        "heavy = {'tensorflow', 'huggingface_hub', 'keras'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
