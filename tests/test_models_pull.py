"""`breakingwind models pull|verify` against a local fake Hub (`HF_ENDPOINT`), as a subprocess."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from breakingwind.modelfiles.lock import Verification, verify_file
from breakingwind.modelfiles.manifest import load_manifest
from tests.conftest import _free_port, write_config
from tests.fakehub import COMMIT, FakeHub, serve

CODER_REPO = "unsloth/Devstral-Small-2507-GGUF"
CODER_FILE = "Devstral-Small-2507-Q6_K.gguf"
# huggingface_hub's http_get writes in 10 MiB chunks, so only a payload over 10 MiB can leave a
# partial file behind when the connection drops.
PAYLOAD_FLOATS = 3 * 1024 * 1024  # 12 MiB of tensor data
CHUNK = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def gguf_payload(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small but well-formed GGUF (12 MiB), written with the gguf package."""
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny-test-model")
    writer.add_block_count(1)
    writer.add_context_length(256)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    rng = np.random.default_rng(7)
    writer.add_tensor("token_embd.weight", rng.random(PAYLOAD_FLOATS, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.fixture
def hub(gguf_payload: bytes) -> Iterator[FakeHub]:
    hub = FakeHub()
    hub.add(CODER_REPO, CODER_FILE, gguf_payload)
    server, thread = serve(hub)
    yield hub
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, '[storage]\ndata_dir = "data"\n[engine]\nmodels_dir = "models"\n')


def run_cli(
    config: Path, env: dict[str, str], hub_url: str, *args: str, **overrides: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **env,
        "HF_ENDPOINT": hub_url,
        "HF_HOME": str(config.parent / "hf-home"),  # no token or cache of the real user
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "BREAKINGWIND_DOWNLOADS__BACKOFF_S": "0.01",
        **overrides,
    }
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "breakingwind", "--config", str(config), "models", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )


def lock_of(config: Path) -> dict:
    return json.loads((config.parent / "models" / "manifest.lock").read_text())


def test_pull_downloads_the_file_and_records_its_sha256(
    hub: FakeHub, config: Path, clean_env: dict[str, str], gguf_payload: bytes
) -> None:
    proc = run_cli(config, clean_env, hub.url, "pull", "coder")
    assert proc.returncode == 0, proc.stderr
    target = config.parent / "models" / CODER_FILE
    assert target.read_bytes() == gguf_payload
    sha256 = hashlib.sha256(gguf_payload).hexdigest()
    entry = lock_of(config)["models"]["coder"]
    assert entry["sha256"] == sha256
    assert entry["size_bytes"] == len(gguf_payload)
    assert entry["commit"] == COMMIT
    assert entry["repo"] == CODER_REPO and entry["path"] == str(target)
    assert f"coder: downloaded {target}" in proc.stdout
    assert not list(target.parent.glob("*.part"))
    calls = [(r.method, r.path) for r in hub.requests]
    assert ("HEAD", f"/{CODER_REPO}/resolve/main/{CODER_FILE}") in calls
    assert ("POST", f"/api/models/{CODER_REPO}/paths-info/{COMMIT}") in calls
    assert ("GET", f"/{CODER_REPO}/resolve/{COMMIT}/{CODER_FILE}") in calls


def test_pull_all_fetches_every_agents_file(
    hub: FakeHub, config: Path, clean_env: dict[str, str], gguf_payload: bytes
) -> None:
    manifest = load_manifest()
    for entry in manifest.models.values():
        hub.add(entry.repo, entry.file, gguf_payload)
    proc = run_cli(config, clean_env, hub.url, "pull")
    assert proc.returncode == 0, proc.stderr
    assert set(lock_of(config)["models"]) == set(manifest.models)
    verify = run_cli(config, clean_env, hub.url, "verify", "--json")
    assert verify.returncode == 0, verify.stdout
    assert all(row["ok"] for row in json.loads(verify.stdout))


def test_second_pull_is_up_to_date_without_a_transfer(
    hub: FakeHub, config: Path, clean_env: dict[str, str]
) -> None:
    assert run_cli(config, clean_env, hub.url, "pull", "coder").returncode == 0
    transfers = len(hub.gets())
    proc = run_cli(config, clean_env, hub.url, "pull", "coder")
    assert proc.returncode == 0, proc.stderr
    assert "coder: up to date" in proc.stdout
    assert len(hub.gets()) == transfers


def test_interrupted_transfer_resumes_on_the_next_pull(
    hub: FakeHub, config: Path, clean_env: dict[str, str], gguf_payload: bytes
) -> None:
    # The connection drops after 11 MiB, and the Hub stays down for the rest of this pull.
    hub.drop_after = CHUNK + 1024 * 1024
    hub.fail_gets = 100
    first = run_cli(
        config, clean_env, hub.url, "pull", "coder", BREAKINGWIND_DOWNLOADS__RETRIES="0"
    )
    assert first.returncode == 1
    assert first.stderr.strip().splitlines()[-1].startswith("breakingwind: coder: ")
    target = config.parent / "models" / CODER_FILE
    assert not target.exists()
    (part,) = target.parent.glob("*.part")
    kept = part.stat().st_size
    assert kept == CHUNK  # what huggingface_hub had written when the connection broke

    hub.fail_gets = 0
    second = run_cli(config, clean_env, hub.url, "pull", "coder")
    assert second.returncode == 0, second.stderr
    assert f"resuming {CODER_FILE}" in second.stderr
    last = hub.gets()[-1]
    assert (last.range, last.status) == (f"bytes={kept}-", 206)
    assert target.read_bytes() == gguf_payload
    assert not part.exists()


def test_server_errors_are_retried_with_backoff(
    hub: FakeHub, config: Path, clean_env: dict[str, str], gguf_payload: bytes
) -> None:
    hub.fail_gets = 2
    proc = run_cli(config, clean_env, hub.url, "pull", "coder", BREAKINGWIND_DOWNLOADS__RETRIES="3")
    assert proc.returncode == 0, proc.stderr
    assert "HTTP 503" in proc.stderr
    assert "retrying in 0.01s (1/3)" in proc.stderr
    assert "retrying in 0.02s (2/3)" in proc.stderr
    assert [r.status for r in hub.gets()] == [503, 503, 200]
    assert (config.parent / "models" / CODER_FILE).read_bytes() == gguf_payload


def test_hash_mismatch_from_the_server_is_refused(
    hub: FakeHub, config: Path, clean_env: dict[str, str], gguf_payload: bytes
) -> None:
    hub.files[(CODER_REPO, CODER_FILE)].advertised_sha256 = "ab" * 32
    proc = run_cli(config, clean_env, hub.url, "pull", "coder")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert f"hashes to {hashlib.sha256(gguf_payload).hexdigest()}" in line
    assert "LFS metadata says " + "ab" * 32 in line
    models = config.parent / "models"
    assert not (models / CODER_FILE).exists()
    assert not list(models.glob("*.part"))
    assert not (models / "manifest.lock").exists()


def test_a_download_that_does_not_fit_the_disk_is_refused_with_the_numbers(
    hub: FakeHub, config: Path, clean_env: dict[str, str]
) -> None:
    # The Hub says the file is 1 EiB; the real free space of tmp_path's disk is far less.
    hub.files[(CODER_REPO, CODER_FILE)].advertised_size = 2**60
    proc = run_cli(config, clean_env, hub.url, "pull", "coder")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "not enough disk space in " in line
    assert f"needs 1073741824.00 GiB ({2**60} bytes) but only " in line
    assert " is free" in line
    assert hub.gets() == []


def test_offline_is_one_clear_line(config: Path, clean_env: dict[str, str]) -> None:
    nobody = f"http://127.0.0.1:{_free_port()}"
    proc = run_cli(config, clean_env, nobody, "pull", "coder")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"breakingwind: coder: cannot reach the Hugging Face Hub at {nobody}")
    assert "Traceback" not in proc.stderr


def test_an_unknown_repository_is_one_clear_line(
    hub: FakeHub, config: Path, clean_env: dict[str, str]
) -> None:
    proc = run_cli(config, clean_env, hub.url, "pull", "reviewer")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("breakingwind: reviewer: repository not found on the Hub")


def test_verify_reports_a_corrupted_file(
    hub: FakeHub, config: Path, clean_env: dict[str, str]
) -> None:
    assert run_cli(config, clean_env, hub.url, "pull", "coder").returncode == 0
    assert run_cli(config, clean_env, hub.url, "verify", "coder").returncode == 0
    target = config.parent / "models" / CODER_FILE
    with target.open("r+b") as handle:  # flip one byte inside the tensor data: size and header OK
        handle.seek(-4096, 2)
        byte = handle.read(1)
        handle.seek(-4096, 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    proc = run_cli(config, clean_env, hub.url, "verify", "coder")
    assert proc.returncode == 1
    assert f"coder: FAILED  {target}" in proc.stdout
    assert "sha256 is " in proc.stdout


def test_verify_fails_a_file_that_models_pull_did_not_record(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    result = verify_file("coder", path, entry=None)
    assert isinstance(result, Verification) and not result.ok
    assert any("breakingwind models pull coder" in p for p in result.problems)
    assert any("GGUF check failed" in p for p in result.problems)
