"""Configuration for `onionclean serve`: embedded defaults < TOML file < environment < flags.

The file is TOML (``--config FILE`` or ``$ONIONCLEAN_CONFIG``)::

    state_dir = "/var/lib/onionclean"

    [capsule]            # fields of capsule.server.CapsuleConfig
    port = 1965
    hostname = "localhost"

    [mailgw]             # fields of mailgw.server.GatewayConfig
    port = 2525
    relay = "127.0.0.1:10025"

    [tor]                # fields of onionclean_tor.TorConfig
    enabled = true

Environment variables override the file: ``ONIONCLEAN_<SECTION>_<FIELD>``, e.g.
``ONIONCLEAN_CAPSULE_PORT=1966``, ``ONIONCLEAN_STATE_DIR=/tmp/x``. Every value is
checked against the section's dataclass at start: an unknown key or a value of
the wrong type stops the start with a message naming it.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

ENV_PREFIX = "ONIONCLEAN_"
T = TypeVar("T")


class ConfigError(Exception):
    """The configuration is wrong; the message says where and how."""


def load_file(path: Path | None) -> dict[str, Any]:
    """The TOML file's tables ({} when no file is given)."""
    if path is None:
        env = os.environ.get(ENV_PREFIX + "CONFIG")
        path = Path(env) if env else None
    if path is None:
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} does not exist") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from e


def env_overrides(section: str, names: typing.Iterable[str],
                  environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``ONIONCLEAN_<SECTION>_<NAME>`` values for the given field names."""
    environ = os.environ if environ is None else environ
    prefix = ENV_PREFIX + (section.upper() + "_" if section else "")
    return {n: environ[prefix + n.upper()] for n in names if prefix + n.upper() in environ}


def _convert(value: Any, hint: Any, where: str) -> Any:
    """Coerce a TOML or environment value to the annotated type, or raise ConfigError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value == "" and len(args) == 1):
            return None
        return _convert(value, args[0], where)
    if origin in (tuple, list, frozenset, set):
        items = value.split(",") if isinstance(value, str) else list(value)
        inner = typing.get_args(hint)[:1] or (str,)
        return origin(_convert(i.strip() if isinstance(i, str) else i, inner[0], where)
                      for i in items if i != "")
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is Path:
            return Path(os.path.expanduser(str(value)))
        if hint is str:
            if not isinstance(value, str | int | float):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError) as e:
        name = getattr(hint, "__name__", str(hint))
        raise ConfigError(f"{where}: {value!r} is not a valid {name}") from e
    return value


def build(cls: type[T], section: str, *layers: Mapping[str, Any]) -> T:
    """An instance of dataclass ``cls`` from layered mappings (later layers win)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            key = key.replace("-", "_")
            where = f"[{section}] {key}" if section else key
            if key not in fields:
                raise ConfigError(
                    f"{where}: unknown setting; known ones are {', '.join(sorted(fields))}"
                )
            if value is None:
                continue
            values[key] = _convert(value, hints[key], where)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[{section}]: {e}") from e
