"""Run configurations as TOML files: write, read, and layer them over a preset.

A config file has the sections of `RunConfig` (`[data]`, `[model]`, `[training]`) and two
top-level keys, `preset` (the preset the file's values are laid over; `"custom"` for the
built-in defaults) and `version`. Any field may be left out: it then keeps the preset's value.
TOML has no null, so an optional field is unset with the string `"none"` (`limit = "none"`).

Example:

>>> from imdb_rnn.config import get_preset
>>> text = config_to_toml(get_preset("deep"))
>>> print(text.splitlines()[4])
preset = "deep"
>>> config_from_toml(text) == get_preset("deep")
True
>>> config_from_toml('preset = "reference"\\n[model]\\ncell = "lstm"\\n').model.cell
'lstm'
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imdb_rnn.config.presets import get_preset
from imdb_rnn.config.schema import CHOICES, SECTIONS, RunConfig
from imdb_rnn.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "CONFIG_TOML_FILE",
    "NONE",
    "config_from_toml",
    "config_to_toml",
    "config_values_from_toml",
    "read_config_file",
    "resolve_config",
]

#: Name of the TOML copy of the resolved config in a model directory.
CONFIG_TOML_FILE = "config.toml"

#: How a config file spells an unset optional value (TOML has no null).
NONE = "none"

#: The preset name of a config built in Python rather than from a preset.
CUSTOM = "custom"

_SECTIONS = tuple(SECTIONS)
_TOP_LEVEL = ("version", "preset")


def _section_fields() -> dict[str, dict[str, dataclasses.Field[Any]]]:
    default = RunConfig()
    return {
        name: {f.name: f for f in dataclasses.fields(getattr(default, name))} for name in _SECTIONS
    }


# -- writing -------------------------------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_ESCAPES["\r"] = "\\r"


def _toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:  # other control characters: TOML forbids them
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if value is None:
        return _toml_string(NONE)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # shortest form that reads back to the same float; valid TOML
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"Cannot write {type(value).__name__} values to TOML. Received: {value!r}")


def config_to_toml(config: RunConfig) -> str:
    """Returns `config` as a TOML document that `config_from_toml` reads back unchanged.

    Args:
        config: the `RunConfig` to write.

    Returns:
        The TOML text, with a comment listing the choices of each string option.
    """
    values = config.to_dict()
    lines = [
        "# imdb-rnn run configuration. Use: imdb-rnn train --config THIS_FILE",
        "# Fields left out keep the preset's value; command-line options override this file.",
        f'# "{NONE}" leaves an optional field unset.',
        f"version = {_toml_value(values['version'])}",
        f"preset = {_toml_value(values['preset'])}",
    ]
    for section in _SECTIONS:
        lines += ["", f"[{section}]"]
        for key, value in values[section].items():
            line = f"{key} = {_toml_value(value)}"
            if key in CHOICES:
                line += "  # " + " | ".join(CHOICES[key])
            lines.append(line)
    return "\n".join(lines) + "\n"


# -- reading -------------------------------------------------------------------------------------


def _where(key: str) -> str | None:
    for section, fields in _section_fields().items():
        if key in fields:
            return section
    return None


def _check_layout(values: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """Checks the keys of a parsed file and turns `"none"` into None where a field allows it."""
    fields = _section_fields()
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in _TOP_LEVEL:
            out[key] = value
            continue
        if key not in fields:
            section = _where(key)
            hint = f" (it belongs in [{section}])" if section else ""
            raise ConfigError(
                f"{origin}: unknown key {key!r}{hint}. Expected the sections "
                f"[data], [model], [training] and the keys {', '.join(_TOP_LEVEL)}."
            )
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{origin}: expected [{key}] to be a table. Received: {key}={value!r}"
            )
        section_values: dict[str, Any] = {}
        for name, item in value.items():
            if name not in fields[key]:
                section = _where(name)
                hint = f" (it belongs in [{section}])" if section else ""
                raise ConfigError(
                    f"{origin}: unknown key {name!r} in [{key}]{hint}. "
                    f"Known keys: {', '.join(fields[key])}."
                )
            kind = str(fields[key][name].type)
            if "None" in kind and isinstance(item, str) and item.lower() == NONE:
                item = None
            if kind.startswith("tuple") and not isinstance(item, list):
                raise ConfigError(
                    f"{origin}: expected {name} in [{key}] to be a list, such as [64]. "
                    f"Received: {name}={item!r}"
                )
            section_values[name] = item
        out[key] = section_values
    return out


def config_values_from_toml(text: str, *, origin: str = "config") -> dict[str, Any]:
    """Parses TOML text into `RunConfig.to_dict()`-shaped values, possibly partial.

    Raises:
        ConfigError: if the text is not TOML or has unknown keys.
    """
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{origin} is not valid TOML: {error}") from None
    except RecursionError:  # arrays or tables nested thousands deep
        raise ConfigError(f"{origin} is not a config: its values are nested too deep.") from None
    return _check_layout(parsed, origin)


def resolve_config(
    values: Mapping[str, Any] | None = None, *, preset: str | None = None, origin: str = "config"
) -> RunConfig:
    """Lays config values over a preset.

    Args:
        values: `RunConfig.to_dict()`-shaped values, possibly partial (as read from a file).
            Default None: the preset alone.
        preset: the preset to start from. Default None: the `preset` named in `values`, else
            `"default"`.
        origin: where the values come from, for error messages. Default "config".

    Returns:
        The validated `RunConfig`.

    Raises:
        ConfigError: on an unknown preset, section or key, or a bad value.
    """
    values = dict(values or {})
    name = preset or values.get("preset") or "default"
    if not isinstance(name, str):
        raise ConfigError(f"{origin}: expected preset to be a string. Received: preset={name!r}")
    # "custom" (a config built in Python) starts from each field's built-in default.
    merged = (RunConfig() if name == CUSTOM else get_preset(name)).to_dict()
    for key, value in values.items():
        if key in _SECTIONS:
            merged[key] = {**merged[key], **value}
        elif key == "version":
            merged[key] = value
    merged["preset"] = name
    try:
        return RunConfig.from_dict(merged)
    except ConfigError as error:
        raise ConfigError(f"{origin}: {error}") from None


def config_from_toml(text: str, *, preset: str | None = None, origin: str = "config") -> RunConfig:
    """Reads a TOML config, laid over its preset (or `preset`, if given).

    Raises:
        ConfigError: if the text is not TOML, or has unknown keys or bad values.
    """
    return resolve_config(
        config_values_from_toml(text, origin=origin), preset=preset, origin=origin
    )


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads a TOML config file into (possibly partial) `RunConfig.to_dict()`-shaped values.

    Args:
        path: a `.toml` file, or a model directory holding `config.toml`.

    Raises:
        ConfigError: if the file is missing, not UTF-8 TOML, or has unknown keys.
        OSError: if the file exists but cannot be read.
    """
    from imdb_rnn.errors import InputError
    from imdb_rnn.files import decode_text, read_limited

    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_TOML_FILE
    try:
        text = decode_text(read_limited(path, what=f"The config file {path}"))
    except FileNotFoundError:
        raise ConfigError(f"No config file at {path}") from None
    except InputError as error:
        raise ConfigError(str(error)) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a UTF-8 text file.") from None
    return config_values_from_toml(text, origin=str(path))
