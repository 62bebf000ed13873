"""The acting policy a rollout worker holds: a snapshot of the learner's, and its rule.

A snapshot is what the learner broadcasts (one ``ray.put`` per weights version): the
policy network's ``spec``, its weights and how ``agent.act(obs, explore=True)`` turns the
network's scores into actions. Small MLPs act in numpy (``rlkit.numpy_mlp``), so a
worker never imports TensorFlow for them; other networks (the Nature CNN) are rebuilt
with ``rlkit.networks.build_network`` in the worker.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rlkit import numpy_mlp
from rlkit.distributions import ActionDist, StateDependentNoise
from rlkit.policies import EpsilonGreedyPolicy, LinearSchedule, sample_categorical


@dataclasses.dataclass(frozen=True)
class PolicySnapshot:
    """The learner's acting policy at one weights version.

    Attributes:
        version: the learner's update count when the snapshot was taken.
        spec: the policy network's ``spec``.
        weights: ``numpy_variables()`` values when ``numpy`` is True, else
            ``get_weights()`` of the Keras network.
        numpy: whether the worker acts in numpy (float32 MLPs).
        rule: ``agent.acting_rule()`` without its ``step`` (sent with each collection).
    """

    version: int
    spec: dict[str, Any]
    weights: list[np.ndarray]
    numpy: bool
    rule: dict[str, Any]


def weights_version(agent: Any) -> int:
    """The agent's update count (``updates``), which tags the weights it acts with."""
    return int(agent.updates.numpy())


def take_snapshot(agent: Any) -> PolicySnapshot:
    """Snapshot ``agent``'s acting policy (see ``Agent.acting_rule``)."""
    network = agent.policy_network()
    rule = dict(agent.acting_rule())
    rule.pop("step", None)
    if network.supports_numpy:
        weights = [np.array(p) for p in network.numpy_params()]
    else:
        weights = [np.array(w) for w in network.get_weights()]
    return PolicySnapshot(
        version=weights_version(agent),
        spec=dict(network.spec),
        weights=weights,
        numpy=bool(network.supports_numpy),
        rule=rule,
    )


class ActingPolicy:
    """Actions from a ``PolicySnapshot``, as ``agent.act(obs, explore=True)`` would choose.

    A worker builds one per run and ``load``s each newer snapshot into it: a TensorFlow
    network (e.g. the Nature CNN) is built and its forward pass compiled once, and a new
    weights version only sets weights (a rebuild and an eager call per version cost more
    than the acting itself).

    With gSDE (a rule with ``sde_sample_freq``) the worker keeps exploration matrices of
    its own, one per env, drawn from its generator as the learner draws its own: before
    the first step, every ``sde_sample_freq`` steps, and whenever newer weights arrive
    (the learner draws after each update).

    Args:
        snapshot: the learner's policy.
        rng: the worker's generator for exploration and sampling.
    """

    def __init__(self, snapshot: PolicySnapshot, rng: np.random.Generator) -> None:
        self.snapshot, self.rng = snapshot, rng
        self.network: Any = None
        self._forward: Any = None
        freq = snapshot.rule.get("sde_sample_freq")
        self.sde_noise = None if freq is None else StateDependentNoise(int(freq))
        if not snapshot.numpy:  # e.g. the Nature CNN: rebuild it with TensorFlow
            import tensorflow as tf

            from rlkit.networks import build_network

            self.network = build_network(snapshot.spec)
            # The learner's acting path: a bfloat16-weight twin under mixed precision.
            acting = self.network.acting_copy()
            call = acting.call_with_features if self.sde_noise is not None else acting.call
            self._forward = tf.function(call, reduce_retracing=True)
            self.load(snapshot)
        rule = snapshot.rule["rule"]
        if rule not in ("categorical", "sample", "epsilon_greedy"):
            raise ValueError(f"unknown acting rule {rule!r}")
        # "sample": from an rlkit.distributions.ActionDist (Gaussian, MultiDiscrete, ...).
        self.dist = ActionDist.from_json(snapshot.rule["dist"]) if rule == "sample" else None
        self.epsilon_greedy: EpsilonGreedyPolicy | None = None
        if rule == "epsilon_greedy":
            schedule = LinearSchedule(*snapshot.rule["schedule"])
            num_actions = int(snapshot.spec["num_actions"])
            self.epsilon_greedy = EpsilonGreedyPolicy(self.scores, num_actions, schedule, rng)

    def load(self, snapshot: PolicySnapshot) -> None:
        """Act with ``snapshot`` from now on: newer weights of the same network and rule.

        Raises:
            ValueError: if the snapshot describes another network or acting rule.
        """
        if snapshot.spec != self.snapshot.spec or snapshot.rule != self.snapshot.rule:
            raise ValueError("a snapshot of another network or acting rule; build a new policy")
        if self.sde_noise is not None and snapshot.version != self.snapshot.version:
            self.sde_noise.reset()
        self.snapshot = snapshot
        if self.network is not None:
            self.network.set_weights(snapshot.weights)
            self.network.sync_acting_copy()

    def log_std(self) -> np.ndarray | None:
        """A Gaussian policy's log-std (the snapshot's last numpy weight), else None."""
        if not self.snapshot.spec.get("log_std_dim"):
            return None
        if self.network is None:
            return np.asarray(self.snapshot.weights[-1])
        return np.asarray(self.network.log_std.numpy())

    def scores(self, obs: np.ndarray) -> np.ndarray:
        """Q-values, logits or a Gaussian's means ``[B, P]``."""
        return self.scores_and_features(obs)[0]

    def scores_and_features(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``scores`` and, for gSDE, the policy features ``[B, F]`` (else None)."""
        sde = self.sde_noise is not None
        if self.network is None:
            spec, weights = self.snapshot.spec, self.snapshot.weights
            scores, phi = numpy_mlp.action_scores_and_features(spec, weights, obs)
            return scores, (phi if sde else None)
        out = self._forward(obs)
        if not isinstance(out, tuple):
            return np.asarray(out), None
        return np.asarray(out[0]), (np.asarray(out[2]) if sde else None)

    def __call__(self, obs: np.ndarray, explore_step: int) -> np.ndarray:
        """Actions ``[B]``; ``explore_step`` is the epsilon schedule's position (learner's)."""
        if self.sde_noise is not None:
            params, phi = self.scores_and_features(obs)
            noise = self.sde_noise(self.log_std(), len(params), self.rng)
            return self.dist.sample(params, self.rng, features=phi, noise=noise)
        if self.dist is not None:
            return self.dist.sample(self.scores(obs), self.rng, self.log_std())
        if self.epsilon_greedy is None:
            return sample_categorical(self.scores(obs), self.rng)
        self.epsilon_greedy.step = explore_step
        return self.epsilon_greedy(obs)
