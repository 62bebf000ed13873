"""rlkit's import graph: no cycles (function-level imports count), and a core that stands alone.

The graph is read from the source with ``ast``, not by importing: an ``import`` inside a
function is an edge like one at the top of the file, since it ties the two modules together
just the same. Imports under ``if TYPE_CHECKING:`` are left out (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import rlkit

PACKAGE = Path(rlkit.__file__).resolve().parent


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package at ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside an ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) block."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
            if name == "TYPE_CHECKING":
                skip.update(id(n) for n in ast.walk(node))
    return skip


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Dotted names an import statement in ``module`` may refer to (absolute)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: anchor at the importing module's package
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    # `from pkg import name` may import the submodule pkg.name, or a name defined in pkg.
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its file.

    A package's ``__init__`` counts as its own module; ``from pkg.mod import f`` is an edge
    to ``pkg.mod``. A submodule importing its own package (``rlkit.envs.make`` -> ``rlkit.envs``)
    is not counted: Python runs the package first anyway.
    """
    modules = module_names(root)
    top = root.name

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _imported(node, name, path.name == "__init__.py"):
                if target.split(".")[0] != top:
                    continue
                found = resolve(target)
                if found and found != name and not name.startswith(found + "."):
                    graph[name].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop, sorted.

    These are the strongly connected components of more than one module, found by Kosaraju's
    two passes: finishing order on the graph, then reachability on the reversed graph.
    """
    order: list[str] = []
    seen: set[str] = set()
    for start in sorted(graph):
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(sorted(graph[start])))]
        while stack:  # iterative depth-first search; a module is done when its edges are
            node, edges = stack[-1]
            for nxt in edges:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, iter(sorted(graph[nxt]))))
                    break
            else:
                order.append(node)
                stack.pop()
    reverse: dict[str, set[str]] = {name: set() for name in graph}
    for name, targets in graph.items():
        for target in targets:
            reverse[target].add(name)
    groups, assigned = [], set()
    for start in reversed(order):
        if start in assigned:
            continue
        group, todo = [], [start]
        assigned.add(start)
        while todo:
            node = todo.pop()
            group.append(node)
            for prev in reverse[node] - assigned:
                assigned.add(prev)
                todo.append(prev)
        if len(group) > 1:
            groups.append(sorted(group))
    return sorted(groups)


def describe(groups: list[list[str]]) -> str:
    return "import cycles:\n" + "\n".join("  " + " <-> ".join(g) for g in groups)


# -- the finder itself, on a package made for it ------------------------------------------
def write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_finder_reports_a_cycle_through_a_function_level_import(tmp_path):
    pkg = write_package(
        tmp_path / "fake",
        {
            "__init__.py": "",
            "a.py": "from fake.b import g\n",
            "b.py": "def g():\n    from fake import c\n",
            "c.py": "import fake.a\n",
            "d.py": "from fake.a import x\n",  # imports into the cycle, is not part of it
        },
    )
    assert cycles(import_graph(pkg)) == [["fake.a", "fake.b", "fake.c"]]


def test_finder_follows_relative_imports_and_subpackages(tmp_path):
    pkg = write_package(
        tmp_path / "fake",
        {
            "__init__.py": "",
            "sub/__init__.py": "from .inner import f\n",
            "sub/inner.py": "from ..top import h\n",
            "top.py": "from fake.sub import f\n",
        },
    )
    graph = import_graph(pkg)
    assert graph["fake.sub"] == {"fake.sub.inner"}
    assert graph["fake.sub.inner"] == {"fake.top"}
    assert cycles(graph) == [["fake.sub", "fake.sub.inner", "fake.top"]]


def test_finder_leaves_out_type_checking_imports(tmp_path):
    pkg = write_package(
        tmp_path / "fake",
        {
            "__init__.py": "",
            "a.py": "from fake.b import g\n",
            "b.py": (
                "import typing\nfrom typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from fake.a import A\n"
                "if typing.TYPE_CHECKING:\n    import fake.a\n"
            ),
        },
    )
    assert cycles(import_graph(pkg)) == []


def test_finder_reads_rlkit():
    graph = import_graph(PACKAGE)
    assert "rlkit.envs.atari" in graph["rlkit.config"]  # a module-level edge
    assert "rlkit.checkpoint" in graph["rlkit.policy_io"]  # a function-level edge


# -- rlkit ----------------------------------------------------------------------------------
def test_no_import_cycles():
    found = cycles(import_graph(PACKAGE))
    assert not found, describe(found)


def test_core_imports_only_types_from_rlkit():
    extra = import_graph(PACKAGE)["rlkit.core"] - {"rlkit.types"}
    assert not extra, f"rlkit/core.py imports {sorted(extra)}; it may import only rlkit.types"


# -- a Ray worker's acting path -------------------------------------------------------------
_WORKER_ACTS = """
import json, sys
from pathlib import Path
import numpy as np
import rlkit.distributed.worker  # what a Ray actor imports
from rlkit.distributed.acting import ActingPolicy, PolicySnapshot
folder = Path(sys.argv[1])
for kind in json.loads((folder / "kinds.json").read_text()):
    meta = json.loads((folder / f"{kind}.json").read_text())
    with np.load(folder / f"{kind}.npz", allow_pickle=False) as f:
        weights = [f[f"w{i}"] for i in range(len(f.files))]
    snapshot = PolicySnapshot(0, meta["spec"], weights, True, meta["rule"])
    obs = np.load(folder / "obs.npy", allow_pickle=False)
    actions = ActingPolicy(snapshot, np.random.default_rng(3))(obs, 0)
    np.save(folder / f"{kind}_actions.npy", actions, allow_pickle=False)
assert "tensorflow" not in sys.modules, "a Ray worker's acting path imported tensorflow"
"""


def test_a_ray_workers_acting_path_imports_no_tensorflow(tmp_path):
    """Workers sample every action distribution (PPO's Gaussian too) in numpy, without TF."""
    import json
    import os
    import subprocess
    import sys

    import gymnasium as gym
    import numpy as np

    from rlkit.agents import PPO, PPOConfig
    from rlkit.distributed.acting import ActingPolicy, take_snapshot

    obs_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    spaces = {
        "discrete": gym.spaces.Discrete(3),
        "box": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
        "multi_discrete": gym.spaces.MultiDiscrete([2, 3]),
        "multi_binary": gym.spaces.MultiBinary(3),
    }
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    expected = {}
    for kind, space in spaces.items():
        agent = PPO(obs_space, space, PPOConfig(hidden_sizes=(8,)), seed=0)
        snapshot = take_snapshot(agent)
        assert snapshot.numpy, kind  # a small MLP: the worker acts in numpy
        meta = {"spec": snapshot.spec, "rule": snapshot.rule}
        (tmp_path / f"{kind}.json").write_text(json.dumps(meta))
        np.savez(tmp_path / f"{kind}.npz", **{f"w{i}": w for i, w in enumerate(snapshot.weights)})
        expected[kind] = ActingPolicy(snapshot, np.random.default_rng(3))(obs, 0)
    (tmp_path / "kinds.json").write_text(json.dumps(sorted(spaces)))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", _WORKER_ACTS, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for kind in spaces:
        got = np.load(tmp_path / f"{kind}_actions.npy", allow_pickle=False)
        np.testing.assert_array_equal(got, expected[kind], err_msg=kind)
