"""How settings are built from TOML tables and ``ASM_*`` variables: strict types, unknown
keys and variables refused with the nearest valid name.

Types are strict: a boolean is TOML ``true`` / ``false`` (or, from the environment, one of
``true false 1 0 yes no on off``), a number is never a boolean, and text is never a list or
a table. Ranges and vocabularies are checked afterwards by :mod:`pipeline.core.config_checks`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pipeline.core.errors import ConfigError

ENV_PREFIX = "ASM_"
#: ``ASM_*`` variables read by other parts of asm-monitor than the settings: the config file,
#: secrets (never in the file), the model cache, and the test hook of ops/run.py. A variable
#: read anywhere else must be listed here, or it is refused as unknown (a test scans the code).
OTHER_ENV_VARS = frozenset(
    {
        "ASM_CONFIG",
        "ASM_MODEL_CACHE",
        "ASM_SH_CLIENT_ID",
        "ASM_SH_CLIENT_SECRET",
        "ASM_WEBHOOK_SECRET",
        "ASM_SMTP_PASSWORD",
        "ASM_PAUSE_AFTER_AOI_S",
    }
)
#: Prefixes of variables that belong to tools around asm-monitor (the benchmark scripts).
OTHER_ENV_PREFIXES = ("ASM_BENCH_",)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

T = TypeVar("T")


def merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``top`` laid over it, table by table."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def unknown_key(key: str, valid: list[str], where: str) -> ConfigError:
    """The error for a key that is not a setting, naming the nearest valid one."""
    near = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    return ConfigError(f"Unknown setting '{key}' in {where}.{hint} Valid keys: {', '.join(sorted(valid))}.")


def _type_error(name: str, where: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"Setting '{name}' in {where} must be {expected}, got {value!r}. Fix the value.")


def _scalar(value: Any, typ: type, *, name: str, where: str) -> Any:
    """``value`` as a bool, int, float, str or Path, refusing anything that is not plainly one."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _type_error(name, where, "true or false", value)
    if isinstance(value, bool) or isinstance(value, Mapping | list | tuple | set):
        raise _type_error(name, where, typ.__name__, value)
    try:
        if typ is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if typ is float:
            return float(value)
        if typ is str:
            if not isinstance(value, str | int | float):
                raise TypeError(value)
            return str(value)
        if typ is Path:
            if not isinstance(value, str | Path):
                raise TypeError(value)
            return Path(value)
    except (TypeError, ValueError) as exc:
        raise _type_error(name, where, typ.__name__, value) from exc
    return value


def coerce(value: Any, typ: Any, *, name: str, where: str, optional: bool = False) -> Any:
    """``value`` converted to the field type ``typ`` (a dataclass means a table)."""
    if value is None and optional:
        return None
    if isinstance(typ, str):  # postponed annotations
        typ = {"float": float, "int": int, "str": str, "bool": bool, "Path": Path}.get(typ, typ)
    if dataclasses.is_dataclass(typ) and isinstance(typ, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"Setting '{name}' in {where} must be a table, got {value!r}.")
        return build(typ, value, where=f"{where} [{name}]")
    if typ in (bool, int, float, str, Path):
        return _scalar(value, typ, name=name, where=where)
    if typing.get_origin(typ) is list:
        if not isinstance(value, list):
            raise _type_error(name, where, "a list (an array of tables in TOML)", value)
        return list(value)
    return value


def build(cls: type[T], values: Mapping[str, Any], *, where: str) -> T:
    """An instance of the settings dataclass ``cls`` from a TOML-shaped mapping."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise unknown_key(key, list(fields), where)
        typ = hints[key]
        optional = False
        if isinstance(typ, types.UnionType):
            optional = type(None) in typing.get_args(typ)
            typ = next(a for a in typing.get_args(typ) if a is not type(None))
        kwargs[key] = coerce(value, typ, name=key, where=where, optional=optional)
    return cls(**kwargs)


def _sections(cls: type) -> tuple[set[str], set[str]]:
    """(section names, top-level key names) of the settings class."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    sections = {n for n in names if dataclasses.is_dataclass(hints[n])}
    return sections, names - sections


def env_names(cls: type) -> list[str]:
    """Every ``ASM_*`` variable that sets a field of the settings class ``cls``."""
    hints = typing.get_type_hints(cls)
    sections, top = _sections(cls)
    out = [f"{ENV_PREFIX}{k.upper()}" for k in top]
    for section in sections:
        out += [
            f"{ENV_PREFIX}{section.upper()}__{f.name.upper()}" for f in dataclasses.fields(hints[section])
        ]
    return sorted(out)


def _unknown_variable(name: str, cls: type, others: Iterable[str]) -> ConfigError:
    near = difflib.get_close_matches(name, [*env_names(cls), *others], n=1)
    hint = f" Did you mean {near[0]}?" if near else ""
    return ConfigError(
        f"Unknown environment variable {name}.{hint} asm-monitor reads ASM_<KEY> for a top-level "
        "setting and ASM_<SECTION>__<KEY> for a key of a [section] (e.g. ASM_OUT_DIR, "
        "ASM_DETECT__MIN_AREA_HA). Fix its name or unset it."
    )


def env_overrides(
    environ: Mapping[str, str], cls: type, *, secret_vars: Iterable[str] = ()
) -> dict[str, Any]:
    """Overrides (TOML-shaped) from the ``ASM_*`` variables of ``environ``.

    Parameters
    ----------
    environ
        The environment.
    cls
        The settings class (its fields name the variables).
    secret_vars
        Further variables that are read elsewhere (a subscription's ``secret_env``).

    Raises
    ------
    ConfigError
        An ``ASM_*`` variable nobody reads, naming the closest known one.
    """
    sections, top = _sections(cls)
    others = OTHER_ENV_VARS | set(secret_vars)
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in others or name.startswith(OTHER_ENV_PREFIXES):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if "__" in key:
            section, sub = key.split("__", 1)
            if section not in sections:
                raise unknown_key(section, sorted(sections), f"environment variable {name}")
            out.setdefault(section, {})[sub] = value
        elif key in top:
            out[key] = value
        else:
            raise _unknown_variable(name, cls, sorted(others))
    return out
