"""Share a trained agent on the Hugging Face Hub: upload an exported folder, load one back.

``python -m rlkit.export RUN --hub DIR`` lays a run's policy out as a Hub model repository
(``rlkit.export.export_for_hub``); ``--push REPO_ID`` uploads it with ``push_folder``.
``load_from_hub(REPO_ID)`` (also ``rlkit.load_from_hub``) downloads a repository's policy
files and loads them with ``rlkit.policy_io.load_policy``.

A downloaded repository is untrusted: only ``policy.json`` (JSON) and
``policy.weights.h5`` (HDF5 arrays, checked against the description first) are read, so
nothing in it is unpickled, imported or run, whatever else the repository holds
(the SavedModel, which rlkit's loader never opens, is not even downloaded).

``huggingface_hub`` is optional (``pip install 'rlkit[hub]'``) and imported only when a
function here is called; every failure of the Hub (no package, no login, no network, no
such repository) is one ``RlkitError`` line.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

from rlkit.errors import MissingExtraError, RlkitError

HUB_EXTRA = "pip install 'rlkit[hub]'"
# What load_from_hub downloads: the files the policy is rebuilt from, its card and results.
DOWNLOADED = ("policy.json", "policy.weights.h5", "README.md", "results.json", "config.yaml")
# The Hub's repository ids: [namespace/]name, letters, digits, '-', '_', '.' (96 at most
# each), no '--' or '..', not ending in '.git'.
REPO_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}")
# huggingface_hub's HTTP clients (requests before 1.0, httpx after): their connection
# errors are not all OSErrors.
NETWORK_LIBRARIES = frozenset({"requests", "urllib3", "httpx", "httpcore", "httpx2"})
LOGIN_HINT = (
    "run `hf auth login` (`huggingface-cli login` before huggingface_hub 0.34) or set HF_TOKEN"
)


def import_hub() -> ModuleType:
    """The ``huggingface_hub`` package.

    Raises:
        MissingExtraError: if it is not installed, naming the extra that installs it.
    """
    try:
        import huggingface_hub
    except ImportError:
        raise MissingExtraError(
            f"sharing agents on the Hugging Face Hub needs huggingface_hub: {HUB_EXTRA}"
        ) from None
    return huggingface_hub


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is a valid Hub model id (``user/name`` or ``name``).

    Raises:
        RlkitError: naming the rule it breaks.
    """
    if (
        not isinstance(repo_id, str)
        or not REPO_ID.fullmatch(repo_id)
        or "--" in repo_id
        or ".." in repo_id
        or repo_id.endswith(".git")
    ):
        raise RlkitError(
            f"{repo_id!r} is not a Hugging Face Hub repository id: expected 'user/name' (or "
            "'name'), letters, digits, '-', '_' and '.', without '--' or '..'"
        )
    return repo_id


def require_login(hub: ModuleType | None = None) -> None:
    """Check that a Hub token is available (a login or ``HF_TOKEN``), without the network.

    Raises:
        MissingExtraError: without huggingface_hub.
        RlkitError: when no token is found, saying how to log in.
    """
    hub = hub or import_hub()
    if not hub.get_token():
        raise RlkitError(f"uploading to the Hugging Face Hub needs a login: {LOGIN_HINT}")


def push_folder(
    folder: str | Path, repo_id: str, *, private: bool = False, commit_message: str | None = None
) -> str:
    """Upload ``folder`` to the Hub model repository ``repo_id``, creating it if need be.

    Args:
        folder: a folder made by ``rlkit.export.export_for_hub``; all of it is uploaded.
        repo_id: ``user/name`` (or ``name``, in the logged-in user's namespace).
        private: create the repository as private (an existing one keeps its visibility).
        commit_message: the Hub commit's message.

    Returns:
        The repository's URL.

    Raises:
        MissingExtraError: without huggingface_hub.
        RlkitError: without a login, without network, or when the Hub refuses (one line).
    """
    hub = import_hub()
    check_repo_id(repo_id)
    require_login(hub)
    folder = Path(folder)
    if not (folder / "policy.json").is_file():
        raise RlkitError(f"{folder} holds no exported policy: make it with --hub first")
    api = hub.HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
        repo_id = getattr(url, "repo_id", None) or repo_id  # 'name' -> 'user/name'
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            commit_message=commit_message or "Upload an rlkit policy",
        )
    except Exception as e:  # the Hub's HTTP errors, or the network library's own
        raise RlkitError(hub_problem(hub, e, f"uploading to {repo_id}")) from None
    return str(url)


def load_from_hub(
    repo_id: str, *, revision: str | None = None, cache_dir: str | Path | None = None
) -> Any:
    """Download a policy shared with ``python -m rlkit.export RUN --push REPO_ID`` and load it.

    Only the policy files, the model card, ``results.json`` and ``config.yaml`` are
    downloaded (into the Hugging Face cache, so a second call works offline), and only
    ``policy.json`` and ``policy.weights.h5`` are read: no pickle, no code from the
    repository, and every field checked before a network is built.

    Example:
        >>> policy = rlkit.load_from_hub("someone/dqn-CartPole-v1")
        >>> action = policy(obs[None])[0]  # greedy actions, as rlkit.policy_io.load_policy

    Args:
        repo_id: the Hub model repository, ``user/name``.
        revision: a branch, tag or commit (default: the main branch).
        cache_dir: where huggingface_hub keeps downloads (default: its own cache).

    Returns:
        An ``rlkit.policy_io.SavedPolicy``.

    Raises:
        MissingExtraError: without huggingface_hub.
        RlkitError: without network (and no cached copy), for a repository that does not
            exist or cannot be seen without a login, or one that holds no valid rlkit policy.
    """
    hub = import_hub()
    check_repo_id(repo_id)
    from rlkit import __version__

    try:
        folder = hub.snapshot_download(
            repo_id,
            repo_type="model",
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=list(DOWNLOADED),
            library_name="rlkit",
            library_version=__version__,
        )
    except Exception as e:  # the Hub's HTTP errors, or the network library's own
        raise RlkitError(hub_problem(hub, e, f"downloading {repo_id}")) from None
    folder = Path(folder)
    if not (folder / "policy.json").is_file():
        raise RlkitError(
            f"{repo_id} on the Hugging Face Hub holds no rlkit policy (no policy.json at its "
            "top level; rlkit shares agents with python -m rlkit.export RUN --push REPO_ID)"
        )
    from rlkit.policy_io import load_policy

    return load_policy(folder)


def hub_problem(hub: ModuleType, error: Exception, doing: str) -> str:
    """One line on why a Hub call failed, and what to do about it."""
    errors = getattr(hub, "errors", None)

    def kind(*names: str) -> bool:
        classes = tuple(c for n in names if isinstance(c := getattr(errors, n, None), type))
        return bool(classes) and isinstance(error, classes)

    detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    status = getattr(getattr(error, "response", None), "status_code", None)
    if kind("GatedRepoError"):
        return f"{doing}: the repository is gated; accept its conditions on the Hub and log in"
    if kind("RepositoryNotFoundError"):
        return (
            f"{doing}: no such repository on the Hugging Face Hub, or it is private and the "
            f"token cannot see it (log in: {LOGIN_HINT})"
        )
    if kind("RevisionNotFoundError"):
        return f"{doing}: no such revision (branch, tag or commit) in the repository"
    if kind("OfflineModeIsEnabled"):
        return f"{doing}: HF_HUB_OFFLINE is set and the files are not in the local cache"
    if kind("LocalEntryNotFoundError"):
        return (
            f"{doing}: cannot reach the Hugging Face Hub (no network?) and the files are not "
            "in the local cache"
        )
    if status in (401, 403):
        return f"{doing}: the Hub refused the token (HTTP {status}): {LOGIN_HINT} again"
    if status is not None:
        return f"{doing}: the Hugging Face Hub answered HTTP {status}: {detail}"
    library = type(error).__module__.partition(".")[0]
    if isinstance(error, OSError) or library in NETWORK_LIBRARIES:
        return f"{doing}: cannot reach the Hugging Face Hub ({type(error).__name__}: {detail})"
    return f"{doing} failed: {type(error).__name__}: {detail}"
