from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.config import Secret, load_settings
from pipeline.core.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "asm.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_env() -> None:
    s = load_settings(None, environ={})
    assert s.detect.min_area_ha == 0.5
    assert s.sample_data == Path("../shared/data")


def test_precedence_cli_over_env_over_file(tmp_path: Path) -> None:
    cfg = _write(tmp_path, 'sample_data = "/from/file"\nlang = "pt"\n[detect]\nmin_area_ha = 2.0\n')
    env = {"ASM_SAMPLE_DATA": "/from/env", "ASM_DETECT__MIN_AREA_HA": "3.5"}
    s = load_settings(cfg, environ=env)
    assert s.sample_data == Path("/from/env")
    assert s.detect.min_area_ha == 3.5
    assert s.lang == "pt"  # file value survives where nothing overrides it
    s = load_settings(cfg, environ=env, cli={"sample_data": "/from/cli", "detect": {"min_area_ha": 9}})
    assert s.sample_data == Path("/from/cli")
    assert s.detect.min_area_ha == 9.0


def test_asm_config_env_names_the_file(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "[comply]\nnear_site_m = 750\n")
    assert load_settings(None, environ={"ASM_CONFIG": str(cfg)}).comply.near_site_m == 750


def test_unknown_key_names_nearest_valid_key(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "[detect]\nmin_area_hectares = 1\n")
    with pytest.raises(ConfigError, match=r"min_area_hectares.*Did you mean 'min_area_ha'"):
        load_settings(cfg, environ={})


def test_unknown_env_section_is_an_error() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'detect'"):
        load_settings(None, environ={"ASM_DETCT__MIN_AREA_HA": "1"})


def test_wrong_type_says_what_is_expected(tmp_path: Path) -> None:
    cfg = _write(tmp_path, '[detect]\nmin_area_ha = "big"\n')
    with pytest.raises(ConfigError, match="must be float, got 'big'"):
        load_settings(cfg, environ={})


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(_write(tmp_path, "detect = [\n"), environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_secret_never_shows_itself() -> None:
    s = Secret("hunter2-very-secret")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    assert s.reveal() == "hunter2-very-secret"
