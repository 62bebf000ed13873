"""Export a trained policy: ``python -m rlkit.export RUN_DIR`` -> SavedModel and model card."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlkit.errors import RlkitError


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
    import tensorflow as tf

    from rlkit.policy_io import load_policy

    run_dir = Path(run_dir)
    source = run_dir / "best_policy" if best else run_dir
    policy = load_policy(source)
    spec = policy.meta["network"]
    out = Path(out) if out is not None else run_dir / "export"
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
    (out / "README.md").write_text(model_card(run_dir, policy.meta))
    return out


def model_card(run_dir: Path, meta: dict[str, Any]) -> str:
    """A model card (front matter as model hubs read it) from the run folder's files."""
    import yaml

    config = {}
    if (run_dir / "config.yaml").exists():
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    results = {}
    if (run_dir / "results.json").exists():
        results = json.loads((run_dir / "results.json").read_text())
    agent, env = meta["agent"], meta["env"]
    mean, std = results.get("mean_reward"), results.get("std_reward")
    front = {
        "library_name": "rlkit",
        "tags": ["reinforcement-learning", "tensorflow", "keras", agent, env],
        "model-index": [
            {
                "name": f"{agent}-{env}",
                "results": [
                    {
                        "task": {"type": "reinforcement-learning"},
                        "dataset": {"name": env, "type": env},
                        "metrics": [
                            {
                                "type": "mean_reward",
                                "value": "unknown" if mean is None else f"{mean:.2f} +/- {std:.2f}",
                            }
                        ],
                    }
                ],
            }
        ],
    }
    hyper = "\n".join(f"| `{k}` | `{v}` |" for k, v in config.items())
    if mean is None:  # e.g. a run with --eval-episodes 0, or a policy saved from Python
        evaluation = "none (the run folder has no results.json)"
    else:
        n = results.get("n_eval_episodes")
        evaluation = f"mean reward {mean:.2f} +/- {std:.2f} over {n} episodes"
    return (
        "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n"
        f"# {agent} on {env}\n\n"
        f"A policy trained with rlkit {meta.get('rlkit_version', '')}. Evaluation: "
        f"{evaluation}.\n\n"
        "## Use\n\n"
        "```python\n"
        "import tensorflow as tf\n"
        'policy = tf.saved_model.load("saved_model")\n'
        'actions = policy.signatures["serving_default"](obs=batch_of_observations)["action"]\n'
        "```\n\n"
        'or with rlkit: `rlkit.policy_io.load_policy(".")` (this folder).\n\n'
        "## Hyperparameters\n\n| setting | value |\n|---|---|\n" + hyper + "\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m rlkit.export``."""
    parser = argparse.ArgumentParser(
        prog="python -m rlkit.export", description="Export a run's policy as a SavedModel."
    )
    parser.add_argument("run", help="run folder")
    parser.add_argument("--out", default=None, help="output folder (default: RUN/export)")
    parser.add_argument("--best", action="store_true", help="export best_policy/")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    if not args.debug:
        from rlkit.tf_setup import import_tensorflow_quietly

        import_tensorflow_quietly()
    try:
        out = export_policy(args.run, args.out, best=args.best)
    except RlkitError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported to {out} (saved_model/, policy.json, policy.weights.h5, README.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
