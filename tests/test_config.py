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


# -- issue 18 item 9: every bad value refused at load, naming the field and the fix ----------


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ("[detect]\nmin_area_ha = nan\n", r"detect\.min_area_ha.*finite"),
        ("[comply]\nturbidity_ratio = inf\n", r"comply\.turbidity_ratio.*finite"),
        ("[detect]\nndvi_forest_min = nan\n", r"detect\.ndvi_forest_min.*finite"),
        ("[detect]\nmin_area_ha = -1\n", r"detect\.min_area_ha.*>= 0"),
        ("[run]\nworkers = -4\n", r"run\.workers.*-4"),
        ("[run]\nthreads_per_worker = 0\n", r"run\.threads_per_worker.*>= 1"),
        ('[run]\nmemory_limit = "1KiB"\n', r"run\.memory_limit.*256 MiB"),
        ('[run]\nmemory_limit = "lots"\n', r"run\.memory_limit.*'lots'.*4GiB"),
        ('lang = "xx"\n', r"lang.*'xx'.*en, es, pt, fr"),
        (
            '[alerts]\nmin_severity = "critical"\n',
            r"alerts\.min_severity.*'critical'.*info, low, medium, high",
        ),
        ("[comply]\nfootprint_cell_deg = 0\n", r"comply\.footprint_cell_deg.*> 0"),
        ('[run]\nscheduler = "bogus://nowhere"\n', r"Unknown scheduler 'bogus://nowhere'.*processes"),
        ("[ingest]\nmin_valid_fraction = 1.5\n", r"ingest\.min_valid_fraction.*between 0 and 1"),
        ("[detect]\nchunk_px = 0\n", r"detect\.chunk_px"),
        ("[alerts]\nsmtp_port = 70000\n", r"alerts\.smtp_port"),
        ("max_aoi_file_mb = 0\n", r"max_aoi_file_mb.*> 0"),
        # strict types: TOML booleans are true/false, numbers are not booleans, lists are not text
        ('[alerts]\ndeliver_on_run = "maybe"\n', r"deliver_on_run.*true or false"),
        ("[alerts]\ndeliver_on_run = 1\n", r"deliver_on_run.*true or false"),
        ("[run]\nthreads_per_worker = true\n", r"threads_per_worker.*must be int, got True"),
        ('lang = ["en"]\n', r"'lang'.*must be str, got \['en'\]"),
        ('[ingest]\nsource = "ftp"\n', r"ingest\.source.*'ftp'.*local, sentinelhub, stac"),
        ('[detect]\ndetector = "magic"\n', r"detect\.detector.*'magic'.*gold-change, index-rules"),
        ('[detect]\nmining_model_sha256 = "abc"\n', r"detect\.mining_model_sha256.*64 hexadecimal"),
    ],
)
def test_bad_values_are_refused_at_load(tmp_path: Path, toml: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as exc:
        load_settings(_write(tmp_path, toml), environ={})
    assert (
        "fix" in str(exc.value).lower() or "use" in str(exc.value).lower() or "set" in str(exc.value).lower()
    )


def test_bad_environment_values_are_refused_too() -> None:
    with pytest.raises(ConfigError, match=r"detect\.min_area_ha.*finite"):
        load_settings(None, environ={"ASM_DETECT__MIN_AREA_HA": "nan"})
    with pytest.raises(ConfigError, match=r"allow_absolute_paths.*true or false"):
        load_settings(None, environ={"ASM_INGEST__ALLOW_ABSOLUTE_PATHS": "maybe"})
    s = load_settings(None, environ={"ASM_INGEST__ALLOW_ABSOLUTE_PATHS": "true"})
    assert s.ingest.allow_absolute_paths is True
    assert load_settings(None, environ={}).ingest.allow_absolute_paths is False


def test_overrides_are_validated_like_the_file() -> None:
    with pytest.raises(ConfigError, match=r"detect\.min_area_ha.*>= 0"):
        load_settings(None, environ={}).with_overrides({"detect": {"min_area_ha": -1}})


@pytest.mark.parametrize(
    ("name", "near"),
    [("ASM_OUTDIR", "ASM_OUT_DIR"), ("ASM_SAMPLEDATA", "ASM_SAMPLE_DATA"), ("ASM_CONFG", "ASM_CONFIG")],
)
def test_unknown_asm_variable_is_refused_with_the_closest(name: str, near: str) -> None:
    with pytest.raises(ConfigError, match=rf"{name}.*Did you mean {near}\?"):
        load_settings(None, environ={name: "x"})


def test_asm_variables_of_other_readers_are_known(tmp_path: Path) -> None:
    cfg = _write(
        tmp_path,
        '[[alerts.subscriptions]]\nname = "ngo"\nwebhook_url = "https://example.org/h"\n'
        'secret_env = "ASM_NGO_SECRET"\n',
    )
    env = {
        "ASM_SH_CLIENT_ID": "a",
        "ASM_SH_CLIENT_SECRET": "b",
        "ASM_WEBHOOK_SECRET": "c",
        "ASM_SMTP_PASSWORD": "d",
        "ASM_PAUSE_AFTER_AOI_S": "0",
        "ASM_BENCH_SIZE": "512",
        "ASM_NGO_SECRET": "e",
        "ASM_CONFIG": str(cfg),
    }
    assert load_settings(None, environ=env).alerts.subscriptions[0]["name"] == "ngo"


def test_defaults_pass_validation_and_limits_have_defaults() -> None:
    s = load_settings(None, environ={})
    assert s.max_aoi_file_mb == 20.0
    assert s.run.workers == 0  # 0 = one per core, the documented default


def test_core_vocabularies_agree_with_their_owners() -> None:
    from importlib import resources

    from pipeline.comply.flags import SEVERITY_ORDER
    from pipeline.core.config_checks import LANGUAGES, LOCAL_SCHEDULERS, SEVERITIES
    from pipeline.ops.cluster import _LOCAL
    from pipeline.report.i18n import LANGUAGES as REPORT_LANGUAGES

    assert list(SEVERITIES) == sorted(SEVERITY_ORDER, key=SEVERITY_ORDER.__getitem__)
    shipped = {
        p.name.removesuffix(".toml") for p in resources.files("pipeline").joinpath("data/i18n").iterdir()
    }
    assert set(LANGUAGES) == shipped == set(REPORT_LANGUAGES)
    assert set(LOCAL_SCHEDULERS) == _LOCAL | {"local"}
    from pipeline.core.config_checks import DETECTORS
    from pipeline.ops.imagery_detect import DETECTORS as OPS_DETECTORS

    assert DETECTORS == OPS_DETECTORS


def test_every_asm_variable_the_code_reads_is_known() -> None:
    """An ``ASM_*`` name in the code that is neither a setting nor listed in OTHER_ENV_VARS
    would be refused as unknown when a user sets it."""
    import re

    from pipeline.core.config import Settings
    from pipeline.core.config_build import OTHER_ENV_PREFIXES, OTHER_ENV_VARS, env_names

    root = Path(__file__).resolve().parents[1] / "pipeline"
    used = {
        m
        for p in root.rglob("*.py")
        for m in re.findall(r"\bASM_[A-Z0-9_]*[A-Z0-9]\b", p.read_text(encoding="utf-8"))
    }
    known = set(env_names(Settings)) | OTHER_ENV_VARS
    # placeholders in messages and docs (ASM_<KEY>) do not match the pattern
    assert {u for u in used if u not in known and not u.startswith(OTHER_ENV_PREFIXES)} == set()
