from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from breakingwind.config import load_settings
from breakingwind.errors import ConfigError
from tests.conftest import write_config

REPO = Path(__file__).resolve().parent.parent


def problems_of(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, str]:
    return dict(exc.value.problems)


def test_repository_config_is_valid_and_matches_the_defaults() -> None:
    settings = load_settings(REPO / "config.toml", environ={})
    assert settings.server.port == 8080
    assert settings.server.host == "127.0.0.1"
    assert settings.pipeline.max_review_cycles == 3
    assert settings.pipeline.stage_timeout_s == 300
    assert settings.coder.n_ctx == 131072
    assert settings.engine.models_dir == REPO / "models"


def test_defaults_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.config_file is None
    assert settings.storage.data_dir == Path("~/.breakingwind").expanduser()
    assert settings.storage.database_path.name == "breakingwind.sqlite3"


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[storage]\ndata_dir = "data"\n[project]\nroot = "proj"\n')
    settings = load_settings(config, environ={})
    assert settings.storage.data_dir == tmp_path / "data"
    assert settings.project.root == tmp_path / "proj"
    assert settings.model_path("coder") == settings.engine.models_dir / settings.coder.model


def test_a_relative_config_path_gives_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, '[storage]\ndata_dir = "data"\n')
    monkeypatch.chdir(tmp_path)
    settings = load_settings(Path("config.toml"), environ={})  # `--config config.toml`
    assert settings.config_file == tmp_path / "config.toml"
    assert settings.storage.data_dir == tmp_path / "data"


def test_environment_overrides_keys(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[server]\nport = 8080\n")
    settings = load_settings(
        config,
        environ={
            "BREAKINGWIND_SERVER__PORT": "9001",
            "BREAKINGWIND_CODER__N_CTX": "4096",
            "BREAKINGWIND_CODER__TEMPERATURE": "0.7",
            "BREAKINGWIND_HOME": str(tmp_path / "home"),
            "BREAKINGWIND_PROJECT_ROOT": str(tmp_path / "project"),
            "UNRELATED": "ignored",
        },
    )
    assert settings.server.port == 9001
    assert settings.coder.n_ctx == 4096
    assert settings.coder.temperature == 0.7
    assert settings.storage.data_dir == tmp_path / "home"
    assert settings.project.root == tmp_path / "project"


def test_breakingwind_config_variable_selects_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[server]\nport = 7777\n")
    settings = load_settings(environ={"BREAKINGWIND_CONFIG": str(config)})
    assert settings.server.port == 7777
    assert settings.config_file == config.resolve()


def test_unknown_key_names_its_dotted_path(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[server]\nprot = 8080\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(config, environ={})
    assert problems_of(exc) == {"server.prot": "unknown key"}


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[servre]\nport = 8080\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(config, environ={})
    assert "servre" in problems_of(exc)


def test_wrong_type_names_the_key_and_what_was_expected(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[coder]\nmodel = "x.gguf"\nn_ctx = "lots"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(config, environ={})
    message = problems_of(exc)["coder.n_ctx"]
    assert "valid integer" in message and "'lots'" in message


def test_out_of_range_value_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[server]\nport = 70000\n[pipeline]\nstage_timeout_s = 0\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(config, environ={})
    problems = problems_of(exc)
    assert "less than or equal to 65535" in problems["server.port"]
    assert "greater than 0" in problems["pipeline.stage_timeout_s"]


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write_config(tmp_path, ""), environ={"BREAKINGWIND_SERVER__PORT": "http"})
    assert "server.port (from BREAKINGWIND_SERVER__PORT)" in problems_of(exc)


def test_unknown_environment_variable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write_config(tmp_path, ""), environ={"BREAKINGWIND_SERVR__PORT": "1"})
    assert "unknown section 'servr'" in problems_of(exc)["BREAKINGWIND_SERVR__PORT"]


def test_the_installers_variables_are_not_settings(tmp_path: Path) -> None:
    """`make run BREAKINGWIND_BACKEND=cuda` hands the install's variables to the daemon too."""
    install = {
        "BREAKINGWIND_BACKEND": "cuda",
        "BREAKINGWIND_WHEEL_CACHE": str(tmp_path / "wheels"),
        "BREAKINGWIND_LIBCUDA": "",
    }
    settings = load_settings(write_config(tmp_path, ""), environ=install)
    assert settings.server.port == load_settings(write_config(tmp_path, ""), environ={}).server.port
    with pytest.raises(ConfigError) as exc:
        load_settings(write_config(tmp_path, ""), environ={"BREAKINGWIND_BACKENDS": "cuda"})
    assert "unknown variable" in problems_of(exc)["BREAKINGWIND_BACKENDS"]


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write_config(tmp_path, "[server\nport = 1\n"), environ={})
    assert "not valid TOML" in problems_of(exc)["config"]


def test_missing_config_file_from_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(environ={"BREAKINGWIND_CONFIG": str(tmp_path / "nope.toml")})
    assert "does not exist" in problems_of(exc)["BREAKINGWIND_CONFIG"]


def test_bad_config_exits_2_naming_the_key_and_starts_nothing(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    config = write_config(tmp_path, f'[server]\nport = {free_port}\n[coder]\nn_ctx = "big"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "breakingwind", "--config", str(config), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean_env, "BREAKINGWIND_HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 2
    assert "coder.n_ctx" in proc.stderr and "valid integer" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "home").exists()  # nothing was started or created


def test_partial_agent_table_keeps_the_other_defaults(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, "[coder]\nn_ctx = 4096\n"), environ={})
    assert settings.coder.n_ctx == 4096
    assert settings.coder.model == "Devstral-Small-2507-Q6_K.gguf"


REMOTE_CODER = '[coder]\nbackend = "openai"\nbase_url = "http://gpu-box:8000/v1/"\n'


def test_a_remote_agent_names_its_model_and_gets_no_local_defaults(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, REMOTE_CODER), environ={})
    assert problems_of(caught) == {"coder.model": "Field required"}
    config = write_config(tmp_path, REMOTE_CODER + 'model = "mistralai/Devstral-Small-2507"\n')
    coder = load_settings(config, environ={}).coder
    assert coder.is_remote and coder.base_url == "http://gpu-box:8000/v1"
    assert "n_ctx" not in coder.model_fields_set  # left for the server to say
    assert coder.api_key() is None


def test_remote_agent_keys_are_checked_against_the_backend(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[coder]\nbackend = "openai"\nmodel = "m"\n'
        '[planner]\nbase_url = "http://gpu-box:8000/v1"\n'
        '[reviewer]\nbackend = "openai"\nmodel = "m"\nbase_url = "http://h/v1"\nn_batch = 8\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    problems = problems_of(caught)
    assert "base_url is required when backend = 'openai'" in problems["coder"]
    assert "base_url cannot be used with backend = 'local'" in problems["planner"]
    assert "n_batch cannot be used with backend = 'openai'" in problems["reviewer"]


def test_credentials_stay_out_of_the_file_and_out_of_error_messages(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, REMOTE_CODER.replace("gpu-box", "user:hunter2@gpu-box") + 'model = "m"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert "hunter2" not in str(caught.value)
    assert "must not hold credentials" in problems_of(caught)["coder.base_url"]


def test_the_api_key_is_read_from_the_named_variable_and_never_dumped(tmp_path: Path) -> None:
    config = write_config(tmp_path, REMOTE_CODER + 'model = "m"\napi_key_env = "GPU_BOX_KEY"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert problems_of(caught) == {
        "coder.api_key_env": "environment variable GPU_BOX_KEY is not set"
    }
    settings = load_settings(config, environ={"GPU_BOX_KEY": "sk-secret-123"})
    assert settings.coder.api_key() == "sk-secret-123"
    assert "sk-secret-123" not in repr(settings) + settings.model_dump_json()
    bad = write_config(tmp_path, REMOTE_CODER + 'model = "m"\napi_key_env = "BREAKINGWIND_KEY"\n')
    with pytest.raises(ConfigError, match="settings overrides"):
        load_settings(bad, environ={})


def test_flash_attn_takes_auto_or_a_boolean_per_agent(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[coder]\nflash_attn = true\n[planner]\nflash_attn = "fast"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    fields = set(problems_of(caught))
    assert fields and all(field.startswith("planner.flash_attn") for field in fields)
    settings = load_settings(write_config(tmp_path, "[coder]\nflash_attn = false\n"), environ={})
    assert settings.coder.flash_attn is False and settings.planner.flash_attn == "auto"
