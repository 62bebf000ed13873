"""Export a trained policy: ``python -m rlkit.export RUN_DIR`` -> SavedModel and model card.

``--hub DIR`` lays the export out as a Hugging Face Hub model repository (a model card with
the metadata the Hub reads, ``results.json``, ``config.yaml``, a replay video) and
``--push REPO_ID`` uploads it (``rlkit.hub``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlkit.errors import RlkitError

log = logging.getLogger(__name__)
# The files of a Hub folder (export_for_hub): a folder holding anything else is refused,
# since --push uploads all of it.
HUB_FILES = frozenset(
    {
        "README.md",
        "results.json",
        "config.yaml",
        "policy.json",
        "policy.weights.h5",
        "saved_model",
        "replay.mp4",
        "replay.gif",
    }
)
REPLAY_FRAMES = 1_000  # frames of the replay episode recorded at most (20 s at 50 fps)
REPLAY_SEED = 0  # the replay episode's reset seed


def _obs_dtype(spec: dict[str, Any]) -> str:
    # Image stacks are uint8 (scaled in the graph), MinAtar grids bool (MinAtar's
    # observation space); vector observations float32.
    return {"nature_cnn": "uint8", "minatar_cnn": "bool"}.get(spec["torso"], "float32")


def export_policy(run_dir: str | Path, out: str | Path | None = None, best: bool = False) -> Path:
    """Export a run's policy to ``out`` (default ``RUN_DIR/export``).

    Writes ``saved_model/`` (serving signature: observations ``[B, *obs_shape]`` ->
    ``action [B, *action_shape]``, the deterministic action, and ``scores [B, P]``:
    Q-values, logits or a Gaussian's means), ``policy.json`` +
    ``policy.weights.h5`` (what rlkit rebuilds the network from) and ``README.md``, a
    model card. Loading the SavedModel needs only TensorFlow (``tf.saved_model.load``).

    Raises:
        RlkitError: if the run folder holds no policy.
    """
    from rlkit.policy_io import load_policy

    run_dir = Path(run_dir)
    source = run_dir / "best_policy" if best else run_dir
    policy = load_policy(source)
    out = Path(out) if out is not None else run_dir / "export"
    _write_policy(policy, source, out)
    (out / "README.md").write_text(model_card(run_dir, policy.meta, best=best))
    return out


def _write_policy(policy: Any, source: Path, out: Path) -> None:
    """The SavedModel and the rlkit policy files of ``policy`` (loaded from ``source``)."""
    import tensorflow as tf

    spec = policy.meta["network"]
    out.mkdir(parents=True, exist_ok=True)
    network, dist = policy.network, policy.dist
    signature = tf.TensorSpec([None, *spec["obs_shape"]], tf.as_dtype(_obs_dtype(spec)), "obs")

    class ServedPolicy(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        @tf.function(input_signature=[signature])
        def serve(self, obs: tf.Tensor) -> dict[str, tf.Tensor]:
            outputs = self.network(obs)
            scores = outputs[0] if isinstance(outputs, tuple) else outputs  # [B, P]
            return {"action": dist.tf_mode(scores), "scores": scores}

    module = ServedPolicy()
    saved = out / "saved_model"
    if saved.exists():
        shutil.rmtree(saved)
    tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve})
    policy_dir = source / "policy" if (source / "policy").is_dir() else source
    for name in ("policy.json", "policy.weights.h5"):
        shutil.copy(policy_dir / name, out / name)


def export_for_hub(
    run_dir: str | Path,
    out: str | Path,
    *,
    best: bool = False,
    video: bool = True,
    repo_id: str | None = None,
) -> Path:
    """Lay out ``out`` as a Hugging Face Hub model repository of a run's policy.

    ``out`` gets what ``export_policy`` writes (``saved_model/``, ``policy.json``,
    ``policy.weights.h5``), the run's ``config.yaml`` and ``results.json`` (its final
    evaluation, which is of the final policy: not copied with ``best``), a replay of one
    greedy episode (``replay.mp4`` with imageio-ffmpeg, else ``replay.gif``; the card says
    why when the env cannot render) and ``README.md``, a model card whose front matter
    holds the metadata the Hub reads: ``library_name``, ``tags`` and a ``model-index``
    with the mean reward.

    Args:
        run_dir: the run folder.
        out: the folder to lay out; new, empty, or an earlier one of these.
        best: export ``best_policy/`` instead of the final policy.
        video: record the replay video.
        repo_id: the repository it is meant for (the card's loading example names it).

    Returns:
        ``out``.

    Raises:
        RlkitError: if the run holds no valid policy, or ``out`` holds other files.
    """
    from rlkit.policy_io import load_policy

    run_dir, out = Path(run_dir), Path(out)
    if out.exists() and not out.is_dir():
        raise RlkitError(f"--hub {out} is a file, not a folder")
    others = (
        sorted(p.name for p in out.iterdir() if p.name not in HUB_FILES) if out.exists() else []
    )
    if others:
        raise RlkitError(
            f"--hub {out} holds files an export does not write ({', '.join(others[:5])}): "
            "pick a new folder (--push uploads all of it)"
        )
    source = run_dir / "best_policy" if best else run_dir
    policy = load_policy(source)
    for name in ("replay.mp4", "replay.gif", "results.json", "config.yaml"):
        (out / name).unlink(missing_ok=True)  # nothing left from an earlier export
    _write_policy(policy, source, out)
    if (run_dir / "config.yaml").is_file():
        shutil.copy(run_dir / "config.yaml", out / "config.yaml")
    if (run_dir / "results.json").is_file() and not best:
        shutil.copy(run_dir / "results.json", out / "results.json")
    replay, reason = None, None
    if video:
        replay, reason = record_replay(policy, out)
        if reason:
            log.warning("no replay video in the model card: %s", reason)
    card = model_card(
        run_dir, policy.meta, best=best, video=replay, no_video=reason, repo_id=repo_id
    )
    (out / "README.md").write_text(card)
    return out


def record_replay(policy: Any, out: Path) -> tuple[str | None, str | None]:
    """Record one greedy episode of ``policy`` into ``out`` as ``replay.mp4`` (or ``.gif``).

    Returns:
        ``(file name, None)``, or ``(None, why not)`` if the env cannot be made or
        rendered, or no video writer is installed: a card without a video, not a failed
        export.
    """
    import importlib.util

    import gymnasium as gym
    import numpy as np

    from rlkit.evaluate import evaluation_env, play_episodes, save_video

    env_id = policy.meta["env"]
    protocol = policy.protocol()
    frames: list[np.ndarray] = []
    try:
        play_episodes(
            policy,
            # The env kwargs the policy was trained with; no module from its own folder.
            evaluation_env(policy.meta, folder=out),
            1,
            REPLAY_SEED,
            check=lambda env: policy.check_env(env_id, env.observation_space, env.action_space),
            protocol=protocol,
            epsilon=0.05 if protocol else 0.0,  # as rlkit.evaluate plays Atari
            record=frames,
            max_frames=REPLAY_FRAMES,
        )
        shapes = {getattr(f, "shape", None) for f in frames}
        first = frames[0] if frames else None
        if (
            first is None
            or len(shapes) != 1
            or first.ndim != 3
            or first.shape[-1] not in (3, 4)
            or first.dtype != np.uint8
        ):
            return None, f"{env_id} renders no RGB frames (render_mode 'rgb_array')"
        if importlib.util.find_spec("imageio_ffmpeg") is not None:
            # H.264 players want sides in multiples of 16: pad with black, do not resize.
            h, w = first.shape[:2]
            pad = ((0, -h % 16), (0, -w % 16), (0, 0))
            name = save_video([np.pad(f[..., :3], pad) for f in frames], out / "replay.mp4").name
        else:
            name = save_video(frames, out / "replay.gif").name
    except RlkitError as e:
        return None, str(e)
    except gym.error.DependencyNotInstalled as e:  # e.g. pygame, imported by render()
        return None, f"rendering {env_id} needs more packages: {e}"
    except Exception as e:  # whatever an env's renderer raises: the card says it
        detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return None, f"recording {env_id} failed ({detail})"
    return name, None


def model_card(
    run_dir: Path,
    meta: dict[str, Any],
    *,
    best: bool = False,
    video: str | None = None,
    no_video: str | None = None,
    repo_id: str | None = None,
) -> str:
    """A model card from the run folder's files, with the front matter the Hugging Face Hub reads.

    The front matter: ``library_name: rlkit``, ``tags`` (reinforcement-learning, the agent,
    the env id, ...) and a ``model-index`` entry (task ``reinforcement-learning``, dataset
    the env id, metric ``mean_reward`` as ``"mean +/- std"``, the format of the Hub's RL
    model cards). The body: the evaluation, the replay video, how to load the policy and
    the hyperparameters.

    Args:
        run_dir: the run folder (its ``config.yaml`` and ``results.json`` are read).
        meta: the policy's description (``policy.json``).
        best: the card is for ``best_policy/``, which the run's ``results.json`` does not
            evaluate (it evaluates the final policy).
        video: the replay video's file name, if there is one.
        no_video: why there is no replay video, if one was asked for.
        repo_id: the Hub repository the card is for (its loading example names it).
    """
    import yaml

    config = {}
    if (run_dir / "config.yaml").exists():
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    results = {}
    if (run_dir / "results.json").exists() and not best:
        results = json.loads((run_dir / "results.json").read_text())
    agent, env = meta["agent"], meta["env"]
    mean, std = results.get("mean_reward"), results.get("std_reward")
    front = {
        "library_name": "rlkit",
        "tags": [
            "reinforcement-learning",
            "deep-reinforcement-learning",
            "tensorflow",
            "keras",
            agent,
            env,
        ],
        "model-index": [
            {
                "name": f"{agent}-{env}",
                "results": [
                    {
                        "task": {
                            "type": "reinforcement-learning",
                            "name": "reinforcement-learning",
                        },
                        "dataset": {"name": env, "type": env},
                        "metrics": [
                            {
                                "type": "mean_reward",
                                "value": "unknown" if mean is None else f"{mean:.2f} +/- {std:.2f}",
                                "name": "mean_reward",
                                "verified": False,
                            }
                        ],
                    }
                ],
            }
        ],
    }
    hyper = "\n".join(f"| `{k}` | `{v}` |" for k, v in config.items())
    if best:
        evaluation = (
            "none here (the run's results.json evaluates its final policy, not best_policy/; "
            "python -m rlkit.evaluate --run RUN --best evaluates this one)"
        )
    elif mean is None:  # e.g. a run with --eval-episodes 0, or a policy saved from Python
        evaluation = "none (the run folder has no results.json)"
    else:
        n = results.get("n_eval_episodes")
        evaluation = f"mean reward {mean:.2f} +/- {std:.2f} over {n} episodes"
        greedy = results.get("is_deterministic", True)
        details = "Greedy actions" if greedy else "Epsilon-greedy or sampled actions"
        when = results.get("eval_datetime")
        evaluation += f". {details}, on seeds the run never trained on"
        evaluation += f" (evaluated {when})" if when else ""
    sections = [
        "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n",
        f"# {agent} on {env}\n",
        f"A policy trained with rlkit {meta.get('rlkit_version', '')}. Evaluation: {evaluation}.\n",
    ]
    if video:
        sections.append(
            f"## Replay\n\nOne greedy episode (seed {REPLAY_SEED}): [{video}]({video})\n"
        )
    elif no_video:
        sections.append(f"## Replay\n\nNo replay video: {' '.join(no_video.split())}.\n")
    use = ["## Use\n"]
    if repo_id:
        use.append(
            "With rlkit (`pip install 'rlkit[hub]'`), which reads only `policy.json` and "
            "`policy.weights.h5` (no pickle, no code from this repository):\n\n"
            "```python\n"
            "import rlkit\n"
            f'policy = rlkit.load_from_hub("{repo_id}")\n'
            "action = policy(obs[None])[0]  # greedy action for one observation\n"
            "```\n\n"
            "or with TensorFlow alone, from a download of this repository:\n"
        )
    use.append(
        "```python\n"
        "import tensorflow as tf\n"
        'policy = tf.saved_model.load("saved_model")\n'
        'actions = policy.signatures["serving_default"](obs=batch_of_observations)["action"]\n'
        "```\n\n"
        'or with rlkit: `rlkit.policy_io.load_policy(".")` (this folder).\n'
    )
    sections.append("\n".join(use))
    sections.append("## Hyperparameters\n\n| setting | value |\n|---|---|\n" + hyper + "\n")
    return "\n".join(sections)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m rlkit.export``."""
    parser = argparse.ArgumentParser(
        prog="python -m rlkit.export",
        description="Export a run's policy as a SavedModel, or lay it out (and upload it) as "
        "a Hugging Face Hub model repository.",
    )
    parser.add_argument("run", help="run folder")
    parser.add_argument("--out", default=None, help="output folder (default: RUN/export)")
    parser.add_argument("--best", action="store_true", help="export best_policy/")
    parser.add_argument(
        "--hub",
        metavar="DIR",
        default=None,
        help="lay out DIR as a Hugging Face Hub model repository: model card, results.json, "
        "config.yaml, policy files, replay video",
    )
    parser.add_argument(
        "--push",
        metavar="REPO_ID",
        default=None,
        help="upload the --hub folder (default: RUN/hub) to the Hub as REPO_ID (user/name); "
        "needs pip install 'rlkit[hub]' and a login (hf auth login, or HF_TOKEN)",
    )
    parser.add_argument("--private", action="store_true", help="--push: create a private repo")
    parser.add_argument("--no-video", action="store_true", help="--hub: no replay video")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    hub = args.hub is not None or args.push is not None
    if args.out is not None and hub:
        parser.error("--out is the SavedModel export's folder; with --hub/--push give --hub DIR")
    if args.no_video and not hub:
        parser.error("--no-video goes with --hub or --push")
    if args.private and args.push is None:
        parser.error("--private goes with --push")
    if not args.debug:
        from rlkit.tf_setup import import_tensorflow_quietly

        import_tensorflow_quietly()
    try:
        if args.push is not None:  # before any work: the package, the id and a login
            from rlkit.hub import check_repo_id, require_login

            check_repo_id(args.push)
            require_login()
        if hub:
            folder = Path(args.hub) if args.hub is not None else Path(args.run) / "hub"
            out = export_for_hub(
                args.run, folder, best=args.best, video=not args.no_video, repo_id=args.push
            )
            names = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
            print(f"Hub folder {out}: {', '.join(names)}")
            if args.push is not None:
                from rlkit.hub import push_folder

                url = push_folder(out, args.push, private=args.private)
                print(f"pushed to {url}")
        else:
            out = export_policy(args.run, args.out, best=args.best)
            print(f"exported to {out} (saved_model/, policy.json, policy.weights.h5, README.md)")
    except RlkitError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
