"""RayRunner: the local runner's interface over envs spread across Ray actors.

Each of ``num_workers`` actors (``RolloutWorker``) owns ``envs_per_worker`` envs and a
copy of the acting policy, so the training loop does not act for them: its explicit Ray
branch (``acts_in_workers``) calls ``act_and_step(agent, obs)``, which hands out
one vector step at a time from a chunk of ``chunk_steps`` rows that every actor collected
with its own policy copy; when a chunk is used up, the next one is collected:

- Weights: before a collection, if the learner has updated since the last broadcast, its
  policy is put in Ray's object store once (``ray.put``) and tagged with the learner's
  update count (the version); every actor reads that one copy. Actors report the
  version they acted with.
- Lag: with ``max_weight_lag = 0`` (always for A2C and REINFORCE) a chunk is collected
  while the learner waits, with its newest weights. With ``max_weight_lag = k > 0`` (the
  DQN family) up to k chunks are collected ahead, while the learner trains on the
  current one: the rows handed out were then collected with weights at most k
  broadcasts older than the newest (each collection broadcasts at most once).
- Data: actors return numpy arrays; Ray may hand them over zero-copy and read-only, so
  they are concatenated (copied) into writable ``[T, N, ...]`` arrays before any row
  reaches a buffer.
- Seeds: env j of N (actor ``j // envs_per_worker``) is reset with ``seed + j``, as the
  local runner resets its env j, so both runners see the same episodes.
- Faults: an actor that dies (``RayActorError``) is restarted by Ray; its partial chunk
  is dropped, its envs are reset with fresh seeds, it gets the current weights and
  collects its part of the chunk again. The first step of that chunk has
  ``restarted = True`` (its env streams start new episodes: on-policy loops drop their
  partial rollout) and ``restarts`` counts them; past ``max_restarts`` an
  ``EnvWorkerError`` ends the run.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlkit import interrupts
from rlkit.distributed.acting import take_snapshot, weights_version
from rlkit.distributed.worker import EnvFactory, RolloutWorker
from rlkit.errors import EnvWorkerError, RlkitError
from rlkit.runner import derive_seed
from rlkit.types import EpisodeStats, Transition

INSTALL_HINT = 'the ray runner needs Ray: pip install "rlkit[distributed]"'


def import_ray() -> Any:
    """Import Ray, or raise ``RlkitError`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RlkitError(INSTALL_HINT) from None
    return ray


def default_chunk_steps(agent: Any, num_envs: int) -> int:
    """Rows per collection when ``chunk_steps`` is 0 (automatic).

    A2C: its ``n_steps``, so one rollout is one chunk, collected with the newest weights.
    DQN family: one ``train_frequency`` period of env steps (at least 16 rows, to keep the
    per-call overhead small), so a chunk spans about one update. REINFORCE: 16 rows; an
    episode longer than that spans chunks and, as with the local runner, its later steps
    may be taken after an update.
    """
    cfg = agent.config
    if hasattr(cfg, "n_steps"):
        return int(cfg.n_steps)
    if hasattr(cfg, "train_frequency"):
        return max(16, int(cfg.train_frequency) // max(num_envs, 1))
    return 16


class _Collection:
    """One chunk being collected: a result reference per actor and how it was asked for."""

    def __init__(
        self, refs: list[Any], version: int, explore_step: int, incarnations: list[int]
    ) -> None:
        self.refs, self.version, self.explore_step = refs, version, explore_step
        self.incarnations = incarnations  # restarts of each actor when it was asked


class RayRunner:
    """Steps envs in Ray actors; the same interface as ``rlkit.runner.VectorRunner``.

    Args:
        env_factory: picklable factory ``num_envs -> vector env`` with NEXT_STEP autoreset
            (e.g. ``functools.partial(rlkit.envs.make_vector_env, "CartPole-v1")``).
        num_workers: Ray actors.
        envs_per_worker: envs in each actor (``num_envs = num_workers * envs_per_worker``).
        chunk_steps: rows each actor collects per request.
        max_weight_lag: chunks collected ahead of the learner (0: synchronous).
        max_restarts: actor restarts allowed over the run before ``EnvWorkerError``.
        seed: seeds the actors' action sampling (envs are seeded by ``reset``).
        clip_rewards: as for ``VectorRunner``.
        life_loss_terminal: as for ``VectorRunner``.
        address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ...) when Ray is
            not initialised yet; None starts a local Ray instance. Ray started here is
            shut down by ``close``.

    Raises:
        RlkitError: if Ray is not installed.
    """

    # The training loop calls act_and_step(agent, obs): the actors act, not the loop.
    acts_in_workers = True

    def __init__(
        self,
        env_factory: EnvFactory,
        *,
        num_workers: int,
        envs_per_worker: int = 1,
        chunk_steps: int = 16,
        max_weight_lag: int = 0,
        max_restarts: int = 3,
        seed: int = 0,
        clip_rewards: bool = False,
        life_loss_terminal: bool = False,
        address: str | None = None,
    ) -> None:
        ray = import_ray()
        if num_workers < 1 or envs_per_worker < 1 or chunk_steps < 1 or max_weight_lag < 0:
            raise ValueError(
                "RayRunner needs num_workers, envs_per_worker and chunk_steps >= 1 and "
                f"max_weight_lag >= 0, got {num_workers}, {envs_per_worker}, {chunk_steps}, "
                f"{max_weight_lag}"
            )
        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=address, include_dashboard=False, configure_logging=False)
        self.num_workers, self.envs_per_worker = num_workers, envs_per_worker
        self.num_envs = num_workers * envs_per_worker
        self.chunk_steps, self.max_weight_lag = chunk_steps, max_weight_lag
        self.max_restarts = max_restarts
        self.env_steps = 0  # valid transitions handed out so far, summed over envs
        self.episodes = 0
        self.restarts = 0  # actors restarted after a crash, over the run
        self.restarted = False  # the last step handed out starts a chunk with a restart
        self.broadcasts = 0  # weights put into the object store
        self.weights_lag = 0  # learner version minus the version of the current chunk
        self._seed = seed
        self._incarnations = [0] * num_workers
        remote = ray.remote(RolloutWorker).options(
            max_restarts=max_restarts,
            max_task_retries=0,  # a collection in flight when its actor dies is dropped
            scheduling_strategy="SPREAD",  # one actor per node first, on a cluster
        )
        runner_kwargs = {"clip_rewards": clip_rewards, "life_loss_terminal": life_loss_terminal}
        self.workers = [
            remote.remote(env_factory, envs_per_worker, i, seed, runner_kwargs)
            for i in range(num_workers)
        ]
        try:
            info = ray.get(self.workers[0].info.remote())
        except BaseException:
            self.close()
            raise
        self.observation_space, self.action_space = info["observation_space"], info["action_space"]
        self._pending: collections.deque[_Collection] = collections.deque()
        self._chunk: dict[str, Any] | None = None
        self._row = 0
        self._chunk_restarted = False
        self._obs: np.ndarray | None = None  # lock-step mode (step) only
        self._snapshot_ref: Any = None
        self._snapshot_version: int | None = None
        self._done_returns: list[float] = []
        self._done_lengths: list[int] = []

    # -- the runner interface ----------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every env (env j gets ``seed + j``) and return observations ``[N, ...]``.

        Chunks collected but not handed out are dropped; episodes in progress are dropped
        from the statistics.
        """
        self._pending.clear()  # each actor runs its calls in order: the reset comes after
        self._chunk, self._row, self.restarted = None, 0, False
        parts = self._call_each(
            "reset", [(self._env_seed(seed, i),) for i in range(self.num_workers)]
        )
        for i, part in enumerate(parts):
            while part is None:
                self._revive(i)
                part = self._call(i, "reset", self._env_seed(seed, i))
        self._obs = np.concatenate(parts)
        return self._obs

    def act_and_step(self, agent: Any, obs: np.ndarray) -> tuple[Transition, np.ndarray]:
        """The next vector step, acted by the actors' copies of ``agent``'s policy.

        ``obs`` (the observations the loop holds) is what the actors acted on: they own
        the envs, so it is not sent. Exploration steps taken by the actors are counted on
        ``agent`` (``advance_exploration``) as its own ``act`` would have.

        Returns:
            ``(transition, obs)`` as ``VectorRunner.step`` returns them.
        """
        if self._chunk is None or self._row == self.chunk_steps:
            self._next_chunk(agent)
        chunk, t = self._chunk, self._row
        if chunk is None:  # _next_chunk always sets one; a None here is a bug in rlkit
            raise RuntimeError("RayRunner has no chunk after collecting one")
        self._row += 1
        self.restarted = t == 0 and self._chunk_restarted
        next_obs = chunk["obs"][t + 1]
        transition = Transition(
            obs=chunk["obs"][t],
            action=chunk["action"][t],
            reward=chunk["reward"][t],
            next_obs=next_obs,
            terminated=chunk["terminated"][t],
            truncated=chunk["truncated"][t],
            valid=chunk["valid"][t],
        )
        agent.advance_exploration(self.num_envs)
        self.env_steps += int(transition.valid.sum())
        for returns, lengths in chunk["episodes"].get(t, ()):
            self._add_episodes(returns, lengths)
        interrupts.check()
        return transition, next_obs

    def step(self, actions: np.ndarray) -> tuple[Transition, np.ndarray]:
        """Step every env once with the given ``actions`` ``[N]`` (one round trip per call).

        The chunked ``act_and_step`` is the fast path; this one exists for callers that
        choose actions themselves. A crashed actor's rows come back as invalid (never
        learned from), with its envs reset, and ``restarted`` set.
        """
        if self._obs is None or self._chunk is not None:
            raise RuntimeError("call reset() before step() (and after act_and_step())")
        n = self.envs_per_worker
        actions = np.asarray(actions)
        args = [(actions[i * n : (i + 1) * n],) for i in range(self.num_workers)]
        results = self._call_each("step", args)
        self.restarted = False
        parts = []
        for i, result in enumerate(results):
            if result is None:  # crashed: an invalid row, like an autoreset row
                self.restarted = True
                new = None
                while new is None:
                    self._revive(i)
                    new = self._call(i, "reset", self._restart_seed(i))
                old = self._obs[i * n : (i + 1) * n]
                zeros = np.zeros(n, np.float32)
                flags = np.zeros(n, bool)
                result = (Transition(old, args[i][0], zeros, new, flags, flags, flags), new, None)
            transition, obs, stats = result
            if stats is not None:
                self._add_episodes(stats.returns, stats.lengths)
            parts.append((transition, obs))
        transition = Transition(
            *(np.concatenate([np.asarray(p[0][k]) for p in parts]) for k in range(7))
        )
        self._obs = np.concatenate([p[1] for p in parts])
        self.env_steps += int(transition.valid.sum())
        interrupts.check()
        return transition, self._obs

    def pop_episode_stats(self) -> EpisodeStats:
        """Returns and lengths of the episodes finished since the last call."""
        stats = EpisodeStats(
            np.asarray(self._done_returns, np.float64), np.asarray(self._done_lengths, np.int64)
        )
        self._done_returns, self._done_lengths = [], []
        return stats

    def worker_pids(self) -> list[int]:
        """Process ids of the actors (they change when Ray restarts one)."""
        return [self._call(i, "info")["pid"] for i in range(self.num_workers)]

    def close(self) -> None:
        """Stop the actors (and Ray, if this runner started it)."""
        for worker in self.workers:
            self._ray.kill(worker, no_restart=True)
        self.workers = []
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()

    # -- collection --------------------------------------------------------------------------
    def _next_chunk(self, agent: Any) -> None:
        """Take the oldest collection (launching one if none), then refill the queue."""
        if not self._pending:
            self._launch(agent, self._explore_step(agent))
        collection = self._pending.popleft()
        # Launch the next ones now, with the newest weights, so that actors collect them
        # while the learner trains on this one.
        while len(self._pending) < self.max_weight_lag:
            last = self._pending[-1] if self._pending else collection
            self._launch(agent, last.explore_step + self.chunk_steps * self.num_envs)
        parts = self._gather(collection, agent)
        # np.concatenate copies: Ray's zero-copy arrays are read-only and must not reach
        # a buffer that writes in place.
        chunk = {
            key: np.concatenate([p[key] for p in parts], axis=1)
            for key in ("obs", "action", "reward", "terminated", "truncated", "valid")
        }
        episodes: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for part in parts:
            for t, returns, lengths in part["episodes"]:
                episodes.setdefault(t, []).append((returns, lengths))
        chunk["episodes"] = episodes
        self._chunk, self._row = chunk, 0
        self.weights_lag = weights_version(agent) - min(p["version"] for p in parts)

    def _launch(self, agent: Any, explore_step: int) -> None:
        """Ask every actor for a chunk, acting with the newest weights."""
        ref = self._broadcast(agent)
        refs = [
            w.collect.remote(ref, self.chunk_steps, explore_step, self.num_envs)
            for w in self.workers
        ]
        self._pending.append(
            _Collection(refs, self._snapshot_version, explore_step, list(self._incarnations))  # type: ignore[arg-type]
        )

    def _broadcast(self, agent: Any) -> Any:
        """The object-store reference of the learner's policy; one put per new version."""
        version = weights_version(agent)
        if version != self._snapshot_version:
            self._snapshot_ref = self._ray.put(take_snapshot(agent))
            self._snapshot_version = version
            self.broadcasts += 1
        return self._snapshot_ref

    def _gather(self, collection: _Collection, agent: Any) -> list[dict[str, Any]]:
        """Every actor's part of ``collection``; crashed actors are revived and redo theirs."""
        parts = self._get_each(collection.refs)
        self._chunk_restarted = False
        for i in range(self.num_workers):
            # Asked before the actor's last restart (a collection queued behind the one
            # that crashed): that crash is counted and the actor reset; just ask again.
            known = collection.incarnations[i] != self._incarnations[i]
            while parts[i] is None:
                if not known:  # a new crash, during this collection or while idle
                    self._revive(i)
                    self._chunk_restarted = True
                    if self._call(i, "reset", self._restart_seed(i)) is None:
                        continue  # died again
                known = False
                ref = self._broadcast(agent)  # the current weights
                parts[i] = self._call(
                    i, "collect", ref, self.chunk_steps, collection.explore_step, self.num_envs
                )
        return parts  # type: ignore[return-value]

    def _explore_step(self, agent: Any) -> int:
        """The learner's acting-step count (the epsilon schedule's position), or 0."""
        return int(agent.acting_rule().get("step", 0))

    # -- actors and faults -------------------------------------------------------------------
    def _revive(self, i: int, timeout: float = 120.0) -> None:
        """Count a restart of actor ``i`` and wait until Ray has restarted it.

        Raises:
            EnvWorkerError: past ``max_restarts``, or if Ray cannot restart the actor.
        """
        self.restarts += 1
        self._incarnations[i] += 1
        if self.restarts > self.max_restarts:
            raise EnvWorkerError(
                f"Ray rollout workers crashed {self.restarts} times, more than "
                f"max_env_restarts={self.max_restarts}; see the Ray logs "
                "(/tmp/ray/session_latest/logs) for why, or raise max_env_restarts"
            )
        exceptions = self._ray.exceptions
        # While Ray restarts the actor, calls fail as "unavailable"; that is no new crash.
        unavailable = getattr(exceptions, "ActorUnavailableError", ())
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._ray.get(self.workers[i].info.remote())
                return
            except unavailable:
                if time.monotonic() > deadline:
                    raise EnvWorkerError(
                        f"Ray rollout worker {i} did not come back within {timeout:.0f} s "
                        "of its crash"
                    ) from None
                time.sleep(0.1)
            except exceptions.RayActorError as e:
                raise EnvWorkerError(f"Ray could not restart rollout worker {i}: {e}") from None

    def _call(self, i: int, method: str, *args: Any) -> Any:
        """``workers[i].method(*args)``, waited for; None if the actor died meanwhile."""
        return self._get_each([getattr(self.workers[i], method).remote(*args)])[0]

    def _call_each(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``method`` on every actor at once (``args[i]`` for actor i)."""
        refs = [getattr(w, method).remote(*a) for w, a in zip(self.workers, args, strict=True)]
        return self._get_each(refs)

    def _get_each(self, refs: list[Any]) -> list[Any]:
        """The results of ``refs``, None where the actor died before answering."""
        results = []
        for ref in refs:
            try:
                results.append(self._ray.get(ref))
            except self._ray.exceptions.RayActorError:
                results.append(None)
        return results

    def _env_seed(self, seed: int | None, i: int) -> int | None:
        """Seed of actor ``i``'s first env: the local runner's ``seed + j`` for env j."""
        return None if seed is None else seed + i * self.envs_per_worker

    def _restart_seed(self, i: int) -> int:
        """Seed of actor ``i``'s envs after a restart: new episodes, still reproducible."""
        return derive_seed(self._seed, self.restarts, i)

    def _add_episodes(self, returns: np.ndarray, lengths: np.ndarray) -> None:
        self._done_returns += np.asarray(returns).tolist()
        self._done_lengths += np.asarray(lengths).tolist()
        self.episodes += len(returns)
