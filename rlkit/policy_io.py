"""Save and load a trained policy as ``policy.json`` + ``policy.weights.h5`` (no pickle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rlkit.distributions import ActionDist
from rlkit.errors import RlkitError

FORMAT_VERSION = 1
POLICY_KEYS = frozenset(
    {"format_version", "agent", "env", "network", "rlkit_version", "atari_protocol", "action"}
    | {"env_kwargs", "flatten_dict_obs"}  # how the env was made, when not by its id alone
)


def save_policy(
    path: str | Path,
    network: Any,
    *,
    agent: str,
    env_id: Any,
    protocol: Any = None,
    action_dist: ActionDist | None = None,
) -> Path:
    """Write ``network`` and its description into the folder ``path``.

    Args:
        path: folder to create (or overwrite the policy files in).
        network: an ``rlkit.networks.Network``.
        agent: registry name of the agent that trained it.
        env_id: the env it was trained on: an id, or an ``rlkit.envs.EnvSource`` (its
            ``env_kwargs`` and ``flatten_dict_obs`` are recorded too).
        protocol: the ``AtariProtocol`` its observations were made with (Atari only).
        action_dist: how a policy-gradient network's outputs become actions (the agent's
            ``dist``); None for Q-networks (greedy) and categorical policies.

    Returns:
        The folder.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    network.save_weights(str(path / "policy.weights.h5"))
    meta = policy_meta(
        network, agent=agent, env_id=env_id, protocol=protocol, action_dist=action_dist
    )
    (path / "policy.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def policy_meta(
    network: Any,
    *,
    agent: str,
    env_id: Any,
    protocol: Any = None,
    action_dist: ActionDist | None = None,
) -> dict[str, Any]:
    """The ``policy.json`` description of ``network`` (see ``save_policy``)."""
    from rlkit import __version__
    from rlkit.config import plain_dict
    from rlkit.envs.source import env_metadata

    meta = {
        "format_version": FORMAT_VERSION,
        "rlkit_version": __version__,
        "agent": agent,
        **env_metadata(env_id),
        "network": network.spec,
    }
    if protocol is not None:
        meta["atari_protocol"] = plain_dict(protocol)
    if action_dist is not None and action_dist.kind != "categorical":
        meta["action"] = action_dist.to_json()
    return meta


class SavedPolicy:
    """A loaded policy: greedy actions from its network, in numpy where possible.

    Attributes:
        meta: the ``policy.json`` description (agent, env, network spec).
        network: the rebuilt Keras network with the saved weights.
        dist: how the network's outputs become actions (the argmax of Q-values or logits
            unless ``meta["action"]`` describes another distribution).
    """

    def __init__(self, meta: dict[str, Any], network: Any) -> None:
        self.meta, self.network = meta, network
        self._rng: np.random.Generator | None = None  # for predict(deterministic=False)
        spec = meta["network"]
        if "action" in meta:
            self.dist = ActionDist.from_json(meta["action"])
        else:
            self.dist = ActionDist("categorical", (int(spec["num_actions"]),))

    def protocol(self) -> Any:
        """The Atari protocol the policy was trained with, or None."""
        values = self.meta.get("atari_protocol")
        if values is None:
            return None
        from rlkit.envs.atari import AtariProtocol

        try:
            values = {**values, "screen_size": tuple(values["screen_size"])}
            return AtariProtocol(**values)
        except (TypeError, KeyError) as e:
            raise RlkitError(f"the policy's atari_protocol is not valid: {e}") from None

    def check_env(self, env_id: str, observation_space: Any, action_space: Any) -> None:
        """Raise ``RlkitError`` unless the env's spaces fit the network's inputs and outputs."""
        spec = self.meta["network"]
        obs_shape = tuple(getattr(observation_space, "shape", None) or ())
        try:
            fits = ActionDist.from_space(action_space, squash=self.dist.squash) == self.dist
        except RlkitError:
            fits = False
        if obs_shape != tuple(spec["obs_shape"]) or not fits:
            raise RlkitError(
                f"the policy was trained for observations of shape {tuple(spec['obs_shape'])} "
                f"and actions {describe_actions(self.dist)} ({self.meta.get('env')}), but "
                f"{env_id} has {observation_space} and {action_space}"
            )

    def scores(self, obs: np.ndarray) -> np.ndarray:
        """Q-values, logits or a Gaussian's means ``[N, P]``."""
        if self.network.supports_numpy:
            out = self.network.numpy_forward(obs)
        else:
            out = self.network(obs)
        out = out[0] if isinstance(out, tuple) else out
        return np.asarray(out)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions ``[N, *action_shape]`` (argmax of Q-values, or the mode)."""
        return self.dist.mode(self.scores(obs))

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Actions for one observation or a batch, as Stable-Baselines3's ``predict``.

        ``deterministic=False`` samples from the policy's action distribution (actor-critic
        policies only; a Q-network has none). Returns ``(action, None)``: one action for one
        observation, ``[N, ...]`` for a batch.

        Raises:
            ValueError: if the observation's shape fits neither.
            RlkitError: for ``deterministic=False`` with a Q-value policy.
        """
        from rlkit.core import as_batch

        del state, episode_start
        batch, single = as_batch(observation, tuple(self.meta["network"]["obs_shape"]))
        if deterministic:
            actions = self(batch)
        else:
            if self._rng is None:
                self._rng = np.random.default_rng()
            actions = self.stochastic(self._rng)(batch)
        return (actions[0] if single else actions), None

    def stochastic(self, rng: np.random.Generator) -> Any:
        """A policy sampling from its action distribution with ``rng`` (actor-critic only).

        Raises:
            RlkitError: for Q-value policies, whose scores are not a distribution.
        """
        if self.meta["network"]["kind"] != "actor_critic":
            raise RlkitError(
                f"--stochastic needs a policy with action probabilities (ppo, a2c, reinforce); "
                f"this is a {self.meta['agent']} Q-network: use --epsilon instead"
            )
        log_std = None
        if self.network.spec.get("log_std_dim"):
            log_std = np.asarray(self.network.log_std.numpy())
        if not self.network.spec.get("sde"):
            return lambda obs: self.dist.sample(self.scores(obs), rng, log_std)

        def sample(obs: np.ndarray) -> np.ndarray:
            # gSDE: independent draws from N(mu(s), sigma(s)^2), the distribution the policy
            # learned; the exploration matrices held over several steps are for training.
            if self.network.supports_numpy:
                params, _, features = self.network.numpy_forward_features(obs, value=False)
            else:
                params, _, features = (np.asarray(t) for t in self.network.call_with_features(obs))
            return self.dist.sample(params, rng, log_std, features)

        return sample


def load_policy(path: str | Path) -> SavedPolicy:
    """Load a policy saved by ``save_policy`` (a run folder or its ``policy/`` folder).

    The folder may come from anyone (a download, a file edited by hand): it is read as
    JSON and HDF5 arrays only, nothing in it is unpickled or run, and every field of
    ``policy.json`` and the shapes of the weights file's arrays are checked
    (``rlkit.policy_check``) before a network is built.

    Raises:
        RlkitError: if the folder holds no policy or its description is not one rlkit wrote
            (naming the field), or the weights file does not fit it.
    """
    from rlkit.networks import build_network
    from rlkit.policy_check import check_policy_fields, check_weights_file, read_description

    path = Path(path)
    if (path / "policy" / "policy.json").exists():
        path = path / "policy"
    desc = path / "policy.json"
    if not desc.is_file():
        raise RlkitError(f"no saved policy in {str(path)!r} (expected policy.json there)")
    meta = read_description(desc)
    if not isinstance(meta, dict) or set(meta) - POLICY_KEYS or "network" not in meta:
        raise RlkitError(f"{desc} is not an rlkit policy description (keys: {sorted(POLICY_KEYS)})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise RlkitError(
            f"{desc} has format version {str(meta.get('format_version'))[:20]}; this rlkit "
            f"reads version {FORMAT_VERSION} (upgrade rlkit to load newer policies)"
        )
    check_policy_fields(meta, str(desc))
    weights = path / "policy.weights.h5"
    if not weights.is_file():
        raise RlkitError(f"{weights} is missing: the policy folder is incomplete")
    check_weights_file(meta["network"], weights, str(desc))
    try:
        network = build_network(meta["network"])
    except (ValueError, TypeError, KeyError) as e:
        raise RlkitError(f"{desc} describes a network rlkit cannot build: {e}") from None
    try:
        network.load_weights(str(weights))
    except (ValueError, OSError) as e:
        raise RlkitError(f"{weights} does not match the network described in {desc}: {e}") from None
    if network.supports_numpy:
        network.refresh_numpy()
    return SavedPolicy(meta, network)


def load_policy_from_checkpoint(path: str | Path) -> SavedPolicy:
    """The policy of a training checkpoint, rebuilt from its run's ``config.yaml``.

    The checkpoint is verified against its manifest first.

    Raises:
        RlkitError: if the checkpoint is damaged or its run folder lacks ``config.yaml``.
    """
    from rlkit.agents import get_agent_class
    from rlkit.checkpoint import Checkpointer
    from rlkit.config import resolve
    from rlkit.envs import EnvSource, make_env
    from rlkit.envs.atari import env_protocol
    from rlkit.policy_check import check_network_settings
    from rlkit.preset_files import read_yaml

    path = Path(path)
    run_dir = path.parent.parent
    if not (run_dir / "config.yaml").is_file():
        raise RlkitError(f"{path} is not inside a run folder with config.yaml")
    saved = read_yaml(run_dir / "config.yaml")
    for key in ("agent", "env"):
        if not isinstance(saved.get(key), str):
            raise RlkitError(f"{run_dir / 'config.yaml'}: {key} is missing or not a name")
    cls = get_agent_class(saved["agent"])
    run, cfg = resolve(cls, saved["env"], config_file=run_dir / "config.yaml")
    check_network_settings(cfg, str(run_dir / "config.yaml"))  # before building the agent
    checkpointer = Checkpointer(run_dir)
    try:
        checkpointer.verify(path)
    except (OSError, ValueError, KeyError) as e:
        raise RlkitError(f"checkpoint {path} is damaged: {e}") from None
    protocol = env_protocol(saved["env"], run)
    source = EnvSource(saved["env"], run.env_kwargs or {}, run.flatten_dict_obs)
    env = make_env(source, protocol=protocol)
    agent = cls(env.observation_space, env.action_space, cfg)
    env.close()
    checkpointer.restore_agent(path, agent)
    network = agent.policy_network()
    meta = policy_meta(
        network,
        agent=cls.name,
        env_id=source,
        protocol=protocol,
        action_dist=getattr(agent, "dist", None),
    )
    return SavedPolicy(meta, network)


def describe_actions(dist: ActionDist) -> str:
    """A few words on the actions a distribution makes (for error messages)."""
    if dist.kind == "categorical":
        return f"Discrete({dist.sizes[0]})"
    if dist.kind == "multi_categorical":
        return f"MultiDiscrete({list(dist.sizes)})"
    if dist.kind == "bernoulli":
        return f"MultiBinary({list(dist.action_shape)})"
    return f"Box of shape {dist.action_shape}"
