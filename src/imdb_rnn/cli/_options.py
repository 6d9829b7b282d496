"""The options the commands share, and the one table of what sets what.

`train`'s config options are generated from the config fields' metadata (`config.schema`:
the fields made with `_option(...)` carry their flag, help and default), and any field can be
set with `--set SECTION.FIELD=VALUE`. The same table names the flag of a library error's
`option` (`"training.checkpoint_every_steps"` -> `--checkpoint-every`), and turns the library's
keyword arguments in a message (`source=`, `overwrite=True`) into the options that set them
(`--data`, `--overwrite`): `in_flags`.

Example:

>>> in_flags("Pass the same source= to resume it, or resume=False to start over.")
'Pass the same --data to resume it, or --overwrite to start over.'
>>> in_flags("Expected epochs >= 1. Received: epochs=0", option="training.epochs")
'--epochs: Expected epochs >= 1. Received: epochs=0'
>>> in_flags("Expected strategy in ['auto']. Received: strategy='ring'", option="strategy")
"Expected --strategy in ['auto']. Received: --strategy 'ring'"
>>> flag_of("training.checkpoint_every_steps")
'--checkpoint-every'
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from imdb_rnn.config.schema import SECTIONS, RunConfig
from imdb_rnn.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "ARGUMENT_FLAGS",
    "CONFIG_OPTIONS",
    "ConfigOption",
    "DataOption",
    "JsonOption",
    "LabelColumnOption",
    "ModelDirArgument",
    "SetOption",
    "StrictOption",
    "TextColumnOption",
    "apply_overrides",
    "config_options",
    "data_file_option",
    "flag_of",
    "in_flags",
]

# -- options that several commands take ---------------------------------------------------------

DataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="aclImdb_v1.tar.gz, an extracted aclImdb/ folder, 'tfds' (IMDB from TensorFlow "
        "Datasets), or 'tfds:NAME' for any TFDS text classification set (its text and label "
        "features: --text-column, --label-column, default its supervised keys). "
        "Default: $IMDB_RNN_DATA, else TensorFlow Datasets (downloads once).",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there.")
]
TextColumnOption = Annotated[
    str,
    typer.Option("--text-column", help="Column (CSV/TSV) or key (JSON Lines) that holds the text."),
]
LabelColumnOption = Annotated[
    str,
    typer.Option(
        "--label-column", help="Column (CSV/TSV) or key (JSON Lines) that holds the label."
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Stop at the first bad row of a data file (missing text or label, unknown label, "
        "not UTF-8) instead of skipping and counting it.",
    ),
]
ModelDirArgument = Annotated[
    Path,
    typer.Argument(
        help="Model directory written by 'imdb-rnn train'.", metavar="MODEL_DIR", show_default=False
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="SECTION.FIELD=VALUE",
        help="Set any config field, such as training.early_stopping_patience=3 or "
        "model.dense_units=[64,32] (repeat the option for more); the value is read as in a "
        "--config file. Applied last, over the options above.",
        show_default=False,
    ),
]


def data_file_option(split: str, what: str) -> Any:
    """`--train`, `--valid`, `--test`, `--unlabelled`: a file of the user's own texts."""
    return typer.Option(
        f"--{split}",
        help=f"{what} CSV, TSV, JSON Lines file or class-per-folder folder (your own data, "
        "instead of --data).",
        show_default=False,
    )


# -- the table: config fields and library arguments -> options -----------------------------------


@dataclass(frozen=True)
class ConfigOption:
    """A config field that `train` sets with an option of its own.

    Attributes:
        section: `"data"`, `"model"` or `"training"`.
        name: the field's name.
        flag: the option (`--checkpoint-every`).
        help: its help text, with what its default is.
        kind: the type the option parses (`int`, `float`, `str`, `Path`, `list[int]`, `bool`).
        switch: for a flag that takes no value, the field's value it sets; else None.
    """

    section: str
    name: str
    flag: str
    help: str
    kind: Any
    switch: bool | None

    @property
    def parameter(self) -> str:
        """The command function's parameter for it (`training_epochs`)."""
        return f"{self.section}_{self.name}"

    def value(self, given: Any) -> Any:
        """The field's value for what the option parsed; None when it was not given."""
        if self.switch is not None:
            return self.switch if given else None
        if given is None:
            return None
        if isinstance(given, Path):
            return str(given)
        return tuple(given) if isinstance(given, list) else given


def _option_kind(field_type: Any, path: bool) -> Any:
    """The type of the option for a field of `field_type` (`int | None` -> `int`)."""
    if path:
        return Path
    args = [arg for arg in typing.get_args(field_type) if arg is not type(None)]
    if typing.get_origin(field_type) is tuple:
        return list[args[0]]  # type: ignore[valid-type]
    return args[0] if args else field_type


def _config_options() -> tuple[ConfigOption, ...]:
    options = []
    for section, section_cls in SECTIONS.items():
        types = typing.get_type_hints(section_cls)
        for field in dataclasses.fields(section_cls):
            meta = field.metadata
            if "help" not in meta:
                continue  # set with --set only
            help_text = meta["help"]
            if meta["default_help"] and meta["switch"] is None:
                help_text += f" [default: {meta['default_help']}]"
            options.append(
                ConfigOption(
                    section=section,
                    name=field.name,
                    flag=meta["flag"] or "--" + field.name.replace("_", "-"),
                    help=help_text,
                    kind=bool
                    if meta["switch"] is not None
                    else _option_kind(types[field.name], meta["path"]),
                    switch=meta["switch"],
                )
            )
    return tuple(options)


#: `train`'s config options, in the order of the sections and their fields.
CONFIG_OPTIONS = _config_options()

#: The library's keyword arguments that the commands' options set: `NAME=` in a message is the
#: option, `NAME=VALUE` the option and its value.
ARGUMENT_FLAGS = {
    "source": "--data",
    "output": "--output",
    "limit": "--limit",
    "text_column": "--text-column",
    "label_column": "--label-column",
    "pseudo_label_threshold": "--pseudo-label-threshold",
    "strategy": "--strategy",
}
#: Boolean arguments: `NAME=VALUE` in a message is the flag that gives that value.
_SWITCHES = {
    "overwrite=True": "--overwrite",
    "resume=False": "--overwrite",
    "on_disk=True": "--on-disk",
    "tensorboard=False": "--no-tensorboard",
}
#: Spellings of the library that are not one argument.
_PHRASES = {
    "source=TextFiles(...)": "--train PATH",
    **{f"TextFiles({name}=PATH)": f"--{name} PATH" for name in ("train", "valid", "test")},
    "TextFiles(unlabelled=PATH)": "--unlabelled PATH",
    "(PretrainConfig.for_model)": "(pretrain --max-tokens, --embedding-dim, --rnn-units)",
}
_FIELD_FLAGS = {f"{option.section}.{option.name}": option.flag for option in CONFIG_OPTIONS}


def flag_of(option: str | None) -> str | None:
    """The command-line option that sets a config field (`"training.epochs"`) or a library
    argument (`"source"`), or None when no option sets it alone."""
    if option is None:
        return None
    return _FIELD_FLAGS.get(option) or ARGUMENT_FLAGS.get(option)


_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
#: A name that follows one of these is part of a path or a flag (`/data/output=1`, `--limit`).
_NOT_BEFORE = _WORD | frozenset("-./\\")
_VALUE_ENDS = frozenset(" \t\n,;:()[]")


def _starts_word(text: str, start: int) -> bool:
    return start == 0 or text[start - 1] not in _NOT_BEFORE


def _replace_name(text: str, name: str, flag: str) -> str:
    """`text` with `name`, where it is a word of its own, written as `flag`."""
    out, position = [], 0
    while (found := text.find(name, position)) >= 0:
        end = found + len(name)
        whole = _starts_word(text, found) and (end == len(text) or text[end] not in _WORD)
        out.append(text[position:found] + (flag if whole else name))
        position = end
    return "".join(out) + text[position:]


def _replace_arguments(text: str) -> str:
    """`text` with each `NAME=VALUE` of `ARGUMENT_FLAGS` and `_SWITCHES` as its option."""
    out, position = [], 0
    while (equals := text.find("=", position)) >= 0:
        start = equals
        while start > position and text[start - 1] in _WORD:
            start -= 1
        name = text[start:equals]
        end = equals + 1
        while end < len(text) and text[end] not in _VALUE_ENDS:
            end += 1
        value = text[equals + 1 : end]
        if value.endswith("."):  # the end of the sentence, not of the value
            value, end = value[:-1], end - 1
        switch = _SWITCHES.get(f"{name}={value}")
        if not _starts_word(text, start) or (switch is None and name not in ARGUMENT_FLAGS):
            out.append(text[position : equals + 1])
            position = equals + 1
            continue
        flag = switch or f"{ARGUMENT_FLAGS[name]}{' ' + value if value else ''}"
        out.append(text[position:start] + flag)
        position = end
    return "".join(out) + text[position:]


def in_flags(message: str, *, option: str | None = None) -> str:
    """`message` as the command line says it: the library's keyword arguments (`source=`,
    `resume=False`, `TextFiles(test=PATH)`) written as the options that set them (`--data`,
    `--overwrite`, `--test PATH`), and the `option` the message is about, if any, named as its
    flag: before the message for a config field (whose name, a key of `--config` files and
    `--set`, the message keeps), in place of a library argument's name."""
    for phrase, spelled in _PHRASES.items():
        message = message.replace(phrase, spelled)
    message = _replace_arguments(message)
    flag = flag_of(option)
    if flag is None or option is None:
        return message
    if "." in option:  # a config field keeps its name, a --config file's key: the flag leads
        return message if flag in message else f"{flag}: {message}"
    named = _replace_name(message, option, flag)
    return named if named != message or flag in message else f"{flag}: {message}"


# -- train's config options ---------------------------------------------------------------------

_Command = TypeVar("_Command", bound=Callable[..., Any])


def config_options(command: _Command) -> _Command:
    """Gives `command` one option per field of `CONFIG_OPTIONS`, in place of its `config_flags`
    parameter, which receives them as `{section: {field: value or None}}` (None: not given).

    The command's other parameters keep their options; Typer reads the generated signature.
    """
    signature = inspect.signature(command, eval_str=True)
    parameters = list(signature.parameters.values())
    at = [parameter.name for parameter in parameters].index("config_flags")
    generated = [
        inspect.Parameter(
            option.parameter,
            inspect.Parameter.KEYWORD_ONLY,
            default=False if option.switch is not None else None,
            annotation=Annotated[
                option.kind if option.switch is not None else option.kind | None,
                typer.Option(
                    option.flag,
                    help=option.help,
                    show_default=False,
                    rich_help_panel=f"Config: {option.section}",
                ),
            ],
        )
        for option in CONFIG_OPTIONS
    ]
    keyword = [
        parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for parameter in parameters[:at] + parameters[at + 1 :]
    ]
    everything = [*keyword[:at], *generated, *keyword[at:]]

    @functools.wraps(command)
    def with_config_flags(**values: Any) -> Any:
        flags: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
        for option in CONFIG_OPTIONS:
            flags[option.section][option.name] = option.value(values.pop(option.parameter))
        return command(**values, config_flags=flags)

    with_config_flags.__signature__ = signature.replace(parameters=everything)  # type: ignore[attr-defined]
    with_config_flags.__annotations__ = {p.name: p.annotation for p in everything}
    return with_config_flags  # type: ignore[return-value]


def _toml_literal(raw: str, field_type: Any) -> str:
    """`raw` as a TOML value: as written where TOML reads it (`3`, `0.5`, `true`, `[64, 32]`,
    `"quoted"`), else as a string (`lstm`, `runs/lm`, `none`)."""
    text = raw.strip()
    takes_text = str in typing.get_args(field_type) or field_type is str
    if text and not (takes_text and text[0] not in "\"'"):
        try:
            tomllib.loads(f"value = {text}")
        except tomllib.TOMLDecodeError:
            pass
        else:
            return text
    return json.dumps(text)


def apply_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """`config` with the `--set SECTION.FIELD=VALUE` overrides applied, in order.

    Raises:
        ConfigError: naming `--set`, for a malformed override, an unknown field or a bad value.
    """
    from imdb_rnn.config.toml import config_values_from_toml

    lines: dict[str, list[str]] = {}
    for override in overrides:
        key, equals, raw = override.partition("=")
        section, dot, name = key.strip().partition(".")
        if not equals or not dot or not section or not name:
            raise ConfigError(
                "Expected --set SECTION.FIELD=VALUE, such as --set training.epochs=3. "
                f"Received: --set {override}"
            )
        fields = typing.get_type_hints(SECTIONS[section]) if section in SECTIONS else {}
        literal = _toml_literal(raw, fields.get(name, str))
        lines.setdefault(section, []).append(f"{json.dumps(name)} = {literal}")
    text = "\n".join(
        f"[{json.dumps(section)}]\n" + "\n".join(body) for section, body in lines.items()
    )
    values = config_values_from_toml(text, origin="--set")
    merged = config.to_dict()
    for section, fields in values.items():
        if isinstance(fields, Mapping):
            merged[section] = {**merged[section], **fields}
    try:
        return RunConfig.from_dict(merged)
    except ConfigError as error:
        field = error.option
        given = [item for item in overrides if field and item.partition("=")[0].strip() == field]
        raise ConfigError(f"--set {given[-1] if given else ' '.join(overrides)}: {error}") from None
