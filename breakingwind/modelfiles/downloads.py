"""`models pull`: download the full-profile GGUFs from the Hugging Face Hub into models_dir.

For each agent: ask the Hub which commit and file it would serve (a HEAD on the file's `resolve`
URL, `get_hf_file_metadata`) and what the file is (the paths-info API, `HfApi.get_paths_info`: the
LFS sha256 and size); refuse when the files would not fit the free disk; stream the file into
`<name>.<sha256[:12]>.part` with huggingface_hub's `http_get` (progress bar; a Range request
resumes a partial file); retry transient failures with exponential backoff, each retry resuming
where the last one stopped; check the sha256 and the GGUF header; move the file into place and
record it in the lock file (`breakingwind.modelfiles.lock`).

Why not `hf_hub_download`: in huggingface_hub 2.x it downloads into a process-unique temporary file
that it deletes when the transfer fails, so an interrupted 20 GB download would start over. The
partial file here keeps its name across runs, and the name carries the expected sha256, so bytes of
another revision are never appended to it. The download goes over plain HTTP (the Hub redirects
`resolve` URLs to its CDN, which honours Range), not through the Xet client.

huggingface_hub reads its own environment: HF_ENDPOINT (another Hub or a mirror), HF_TOKEN (gated
or private repositories), HF_HUB_OFFLINE, HF_HUB_DISABLE_PROGRESS_BARS.
"""

from __future__ import annotations

import glob
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel

from breakingwind.config import DownloadSettings, Settings
from breakingwind.engine.gguf_file import inspect_gguf
from breakingwind.errors import (
    ChecksumMismatch,
    DownloadError,
    HubUnreachable,
    InvalidModelFile,
    NotEnoughDisk,
)
from breakingwind.modelfiles.lock import LockEntry, load_lock, lock_path, save_lock, sha256_file
from breakingwind.modelfiles.manifest import Manifest

T = TypeVar("T")
Say = Callable[[str], None]
MAX_BACKOFF_S = 60.0
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class PullTarget:
    """One agent's file: where it is on the Hub and where it goes on disk."""

    agent: str
    repo: str
    filename: str
    revision: str
    dest: Path


class RemoteFile(BaseModel):
    """What the Hub says about a file at a commit."""

    commit: str
    sha256: str
    size_bytes: int
    url: str


class PullResult(BaseModel):
    agent: str
    path: Path
    action: Literal["downloaded", "up_to_date", "recorded"]
    sha256: str
    size_bytes: int
    commit: str


def pull_targets(settings: Settings, manifest: Manifest, agents: list[str]) -> list[PullTarget]:
    """Each agent's manifest entry and its configured destination; two different Hub files may
    not share one destination."""
    targets: list[PullTarget] = []
    by_dest: dict[Path, PullTarget] = {}
    for agent in agents:
        entry = manifest.models[agent]
        dest = settings.model_path(agent)
        target = PullTarget(agent, entry.repo, entry.file, entry.revision, dest)
        other = by_dest.get(target.dest)
        if other is not None and (other.repo, other.filename) != (target.repo, target.filename):
            raise DownloadError(
                f"{other.agent} and {agent} are both configured to use {target.dest}, but the"
                f" manifest gives them different files ({other.repo}/{other.filename} and"
                f" {target.repo}/{target.filename}); give one of them another `model` name"
            )
        by_dest[target.dest] = target
        targets.append(target)
    return targets


def pull_models(
    settings: Settings,
    manifest: Manifest,
    agents: list[str],
    *,
    force: bool = False,
    say: Say = print,
) -> list[PullResult]:
    """Download what is missing or outdated (see the module docstring); return what was done.

    The lock file is saved after each file, so a failure later keeps the earlier files recorded.
    A refused or failed download raises a `DownloadError` whose message is one line.
    """
    policy = settings.downloads
    path = lock_path(settings)
    lock = load_lock(path)
    results: list[PullResult] = []
    pending: list[tuple[PullTarget, RemoteFile]] = []
    for target in pull_targets(settings, manifest, agents):
        remote = _with_retries(
            lambda t=target: fetch_remote_file(t), policy, say, target.agent, offline_fast=True
        )
        action = _local_action(target, remote, lock.models.get(target.agent), force, say)
        if action is None:
            pending.append((target, remote))
            continue
        results.append(_result(target, remote, action))
        if action == "recorded":
            lock.models[target.agent] = _lock_entry(target, remote)
            save_lock(lock, path)
    downloaded: set[Path] = set()
    check_free_disk(list({target.dest: (target, remote) for target, remote in pending}.values()))
    for target, remote in pending:
        if target.dest not in downloaded:  # agents configured to share one file fetch it once
            download_file(target, remote, policy, say)
            downloaded.add(target.dest)
        lock.models[target.agent] = _lock_entry(target, remote)
        save_lock(lock, path)
        results.append(_result(target, remote, "downloaded"))
    return results


def fetch_remote_file(target: PullTarget) -> RemoteFile:
    """Resolve the revision to a commit (HEAD on `resolve`) and read the LFS sha256 and size."""
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.hf_api import RepoFile

    head = get_hf_file_metadata(hf_hub_url(target.repo, target.filename, revision=target.revision))
    commit = head.commit_hash
    if not commit:
        raise DownloadError(f"{target.agent}: the Hub's answer has no X-Repo-Commit header")
    infos = HfApi().get_paths_info(target.repo, [target.filename], revision=commit)
    info = next((i for i in infos if isinstance(i, RepoFile) and i.path == target.filename), None)
    if info is None:
        raise DownloadError(f"{target.agent}: {target.filename} not found in {target.repo}")
    if info.lfs is None:
        raise DownloadError(
            f"{target.agent}: {target.repo}/{target.filename} is not an LFS file, so the Hub gives"
            " no sha256 to check it against"
        )
    # For an LFS file the HEAD's X-Linked-Etag is the same sha256; a proxy or mirror serving
    # something else shows up here, before any byte is downloaded.
    head_sha256 = head.etag if head.etag and len(head.etag) == 64 else None
    if head.size not in (None, info.lfs.size) or head_sha256 not in (None, info.lfs.sha256):
        raise DownloadError(
            f"{target.agent}: the Hub's metadata disagrees with itself for {target.filename}"
            f" (HEAD: sha256 {head.etag}, {head.size} bytes; paths-info: sha256"
            f" {info.lfs.sha256}, {info.lfs.size} bytes); try again later"
        )
    return RemoteFile(
        commit=commit,
        sha256=info.lfs.sha256,
        size_bytes=info.lfs.size,
        url=hf_hub_url(target.repo, target.filename, revision=commit),
    )


def check_free_disk(pending: list[tuple[PullTarget, RemoteFile]]) -> None:
    """Raise `NotEnoughDisk` when the remaining bytes do not fit a destination's filesystem."""
    needed: dict[int, int] = {}
    where: dict[int, Path] = {}
    for target, remote in pending:
        target.dest.parent.mkdir(parents=True, exist_ok=True)
        device = target.dest.parent.stat().st_dev
        where.setdefault(device, target.dest.parent)
        needed[device] = needed.get(device, 0) + remote.size_bytes - _partial_bytes(target, remote)
    for device, bytes_needed in needed.items():
        free = shutil.disk_usage(where[device]).free
        if bytes_needed > free:
            raise NotEnoughDisk(
                f"not enough disk space in {where[device]}: the download needs"
                f" {_size(bytes_needed)} but only {_size(free)} is free; free some space or point"
                " engine.models_dir at a bigger disk",
                needed_bytes=bytes_needed,
                free_bytes=free,
            )


def download_file(
    target: PullTarget, remote: RemoteFile, policy: DownloadSettings, say: Say
) -> None:
    """Fetch into the partial file (resuming), check it, and move it to `target.dest`."""
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    part = _partial_path(target, remote)
    for stale in target.dest.parent.glob(glob.escape(target.dest.name) + ".*.part"):
        if stale != part:
            stale.unlink()  # a partial file of another revision can never be resumed

    def transfer() -> None:
        if part.exists() and part.stat().st_size > remote.size_bytes:
            part.unlink()
        with part.open("ab") as handle:
            resume = handle.tell()
            if resume:
                say(f"{target.agent}: resuming {target.dest.name} at {_human(resume)}")
            http_get(
                remote.url,
                handle,
                resume_size=resume,
                headers=build_hf_headers(),
                expected_size=remote.size_bytes,
                displayed_filename=target.dest.name,
            )

    try:
        _with_retries(transfer, policy, say, target.agent)
    except DownloadError as exc:
        kept = part.stat().st_size if part.exists() else 0
        if not kept:
            raise
        raise type(exc)(
            f"{exc}; {_human(kept)} of {_human(remote.size_bytes)} kept:"
            f" `breakingwind models pull {target.agent}` resumes it"
        ) from None
    digest = sha256_file(part, label=target.agent)
    if digest != remote.sha256:
        part.unlink()
        raise ChecksumMismatch(
            f"{target.agent}: {target.repo}/{target.filename} hashes to {digest}, but the Hub's"
            f" LFS metadata says {remote.sha256}; the download was deleted"
        )
    try:
        inspect_gguf(part)
    except InvalidModelFile as exc:
        part.unlink()
        raise DownloadError(f"{target.agent}: the Hub's file is not a usable GGUF: {exc}") from None
    os.replace(part, target.dest)


def _local_action(
    target: PullTarget, remote: RemoteFile, entry: LockEntry | None, force: bool, say: Say
) -> Literal["up_to_date", "recorded"] | None:
    """What to do without downloading; None means download."""
    if force or not target.dest.exists():
        return None
    ours = entry is not None and entry.path == target.dest
    if ours and entry.sha256 == remote.sha256 and target.dest.stat().st_size == remote.size_bytes:
        return "up_to_date"
    if ours:
        return None  # our own earlier download of another revision, or a damaged one
    say(f"{target.agent}: {target.dest} exists but is not in the lock file; checking its sha256")
    if sha256_file(target.dest, label=target.agent) == remote.sha256:
        return "recorded"
    raise DownloadError(
        f"{target.agent}: {target.dest} exists but is not {target.repo}/{target.filename}"
        f" (its sha256 differs); move it away, or pass --force to replace it"
    )


def _with_retries(
    action: Callable[[], T],
    policy: DownloadSettings,
    say: Say,
    agent: str,
    offline_fast: bool = False,
) -> T:
    """Run `action`, retrying transient network failures with exponential backoff. Errors come
    out as one-line `DownloadError`s; anything that is not a network or disk error propagates.

    With `offline_fast`, a refused connection on the first try means "offline": fail at once
    rather than back off (for the first contact with the Hub, not for a transfer under way).
    """
    delay = policy.backoff_s
    for attempt in range(policy.retries + 1):
        try:
            return action()
        except Exception as exc:
            classified = _classify(exc, retry_connect=not (offline_fast and attempt == 0))
            if classified is None:
                raise
            error, transient = classified
            if not transient or attempt == policy.retries:
                raise type(error)(f"{agent}: {error}") from None
            say(f"{agent}: {error}; retrying in {delay:g}s ({attempt + 1}/{policy.retries})")
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
    raise AssertionError("unreachable")


def _classify(exc: Exception, retry_connect: bool) -> tuple[DownloadError, bool] | None:
    """A one-line error for `exc` and whether retrying may help; None for unexpected errors."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hub = constants.ENDPOINT
    if isinstance(exc, OfflineModeIsEnabled):
        return HubUnreachable("HF_HUB_OFFLINE is set, so nothing can be downloaded"), False
    if isinstance(exc, httpx2.ConnectError):
        return HubUnreachable(
            f"cannot reach the Hugging Face Hub at {hub} ({_first_line(exc)}); check the network"
            " connection (and HF_ENDPOINT, if set)"
        ), retry_connect
    if isinstance(exc, httpx2.TimeoutException):
        return HubUnreachable(f"the Hub at {hub} timed out ({type(exc).__name__})"), True
    if isinstance(exc, httpx2.TransportError):
        return DownloadError(f"the connection broke ({_first_line(exc)})"), True
    if isinstance(exc, GatedRepoError):
        message = "the repository is gated: accept its terms on the Hub, then log in (HF_TOKEN)"
        return DownloadError(message), False
    if isinstance(exc, RepositoryNotFoundError):
        message = "repository not found on the Hub (private? set HF_TOKEN)"
        return DownloadError(message), False
    if isinstance(exc, RevisionNotFoundError | RemoteEntryNotFoundError):
        return DownloadError(f"not found on the Hub: {_first_line(exc)}"), False
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code
        url = exc.response.request.url
        return DownloadError(f"the Hub answered HTTP {status} for {url}"), status in (
            _TRANSIENT_STATUS
        )
    if isinstance(exc, OSError) and exc.errno is None:
        return DownloadError(f"the transfer was incomplete ({_first_line(exc)})"), True
    if isinstance(exc, OSError):
        return DownloadError(f"cannot write the file: {exc}"), False
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _partial_path(target: PullTarget, remote: RemoteFile) -> Path:
    return target.dest.with_name(f"{target.dest.name}.{remote.sha256[:12]}.part")


def _partial_bytes(target: PullTarget, remote: RemoteFile) -> int:
    part = _partial_path(target, remote)
    size = part.stat().st_size if part.exists() else 0
    return size if size <= remote.size_bytes else 0


def _lock_entry(target: PullTarget, remote: RemoteFile) -> LockEntry:
    return LockEntry(
        repo=target.repo,
        file=target.filename,
        commit=remote.commit,
        path=target.dest,
        size_bytes=remote.size_bytes,
        sha256=remote.sha256,
        downloaded_at=datetime.now(UTC),
    )


def _result(target: PullTarget, remote: RemoteFile, action: str) -> PullResult:
    return PullResult(
        agent=target.agent,
        path=target.dest,
        action=action,
        sha256=remote.sha256,
        size_bytes=remote.size_bytes,
        commit=remote.commit,
    )


def _size(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB ({n} bytes)"


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "bytes" else f"{n} bytes"
        n /= 1024
    return f"{n:.2f} GiB"
