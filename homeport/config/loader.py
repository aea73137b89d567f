"""Load `homeport.yaml` into the model, reporting every problem with file, line and key.

YAML is read with ruamel.yaml, which remembers where each key stands; pydantic
then validates the plain data and each of its errors is mapped back to a line.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from homeport.config.checks import cross_section_problems
from homeport.config.deployment import Deployment
from homeport.config.lines import KeyPath, LineMap, dotted
from homeport.config.paths import map_named_files
from homeport.errors import ConfigError, ConfigProblem


def _plain(node: Any, path: KeyPath, lines: dict[KeyPath, int]) -> Any:
    """Turn ruamel's round-trip nodes into plain data, recording line numbers."""
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key in node:
            line, _col = node.lc.key(key)
            child = (*path, str(key))
            lines[child] = line + 1
            out[key] = _plain(node[key], child, lines)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, item in enumerate(node):
            line, _col = node.lc.item(index)
            lines[(*path, index)] = line + 1
            items.append(_plain(item, (*path, index), lines))
        return items
    if isinstance(node, str):
        return str(node)
    return node


def parse_yaml(text: str, source: Path) -> tuple[Any, LineMap]:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(p for p in (error.context, error.problem) if p)
        hint = "each key may appear only once" if "duplicate" in problem else ""
        raise ConfigError(
            [ConfigProblem(source, line, "", f"YAML syntax error: {problem}", hint)]
        ) from error
    lines: dict[KeyPath, int] = {(): 1}
    return _plain(data, (), lines), LineMap(lines)


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` -> X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _allowed_keys(path: KeyPath) -> list[str]:
    """The keys allowed at `path`, read from the model itself, for 'did you mean' hints."""
    annotation: Any = Deployment
    for part in path:
        annotation = _unwrap(annotation)
        origin = get_origin(annotation)
        if origin is dict:
            annotation = get_args(annotation)[1]  # `part` is a key such as a homeserver name
        elif origin is list:
            annotation = get_args(annotation)[0]  # `part` is an index
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _problem_from_pydantic(error: Any, source: Path, lines: LineMap) -> ConfigProblem:
    # Pydantic marks errors in a mapping key with a "[key]" step; the key itself names it.
    loc: KeyPath = tuple(part for part in error["loc"] if part != "[key]")
    kind = error["type"]
    value = error.get("input")
    hint = ""
    if kind == "extra_forbidden":
        parent, key = loc[:-1], str(loc[-1])
        allowed = _allowed_keys(parent)
        message = f"unknown key {key!r}"
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
        return ConfigProblem(source, lines.line_of(loc), dotted(loc), message, hint)
    if kind == "missing":
        message = f"required key {str(loc[-1])!r} is missing"
        return ConfigProblem(source, lines.line_of(loc[:-1]), dotted(loc), message)
    if kind == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        message = f"expected an integer, got {value!r}"
    elif kind in ("bool_parsing", "bool_type"):
        message = f"expected true or false, got {value!r}"
    elif kind in ("string_type",):
        message = f"expected a string, got {value!r}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = f"expected a mapping of keys to values, got {value!r}"
    elif kind in ("list_type",):
        message = f"expected a list, got {value!r}"
    elif kind in ("greater_than_equal", "less_than_equal"):
        message = f"{error['msg'].lower()}, got {value!r}"
    elif kind == "too_short":
        message = "must not be empty"
    else:
        message = f"{error['msg']}, got {value!r}"
    return ConfigProblem(source, lines.line_of(loc), dotted(loc), message, hint)


def _resolve_paths(model: Deployment, base_dir: Path) -> Deployment:
    """Relative paths in the file are relative to the file, not to the caller's cwd."""

    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else (base_dir / path).resolve()

    model = map_named_files(model, lambda _label, path: absolute(path))
    homeservers = {
        name: hs
        if hs.audit is None or hs.audit.export is None
        else hs.model_copy(
            update={
                "audit": hs.audit.model_copy(
                    update={
                        "export": hs.audit.export.model_copy(
                            update={"directory": absolute(hs.audit.export.directory)}
                        )
                    }
                )
            }
        )
        for name, hs in model.homeservers.items()
    }
    return model.model_copy(
        update={
            "data_dir": absolute(model.data_dir),
            "backup": model.backup.model_copy(
                update={"directory": absolute(model.backup.directory)}
            ),
            "homeservers": homeservers,
        }
    )


def load_deployment_text(text: str, source: Path) -> tuple[Deployment, LineMap]:
    """Parse and validate; raise ConfigError listing every problem found."""
    data, lines = parse_yaml(text, source)
    if data is None:
        raise ConfigError(
            [ConfigProblem(source, 1, "", "the file is empty", "start from `homeport init DIR`")]
        )
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem(source, 1, "", "expected a mapping with a `homeservers` key at the top")]
        )
    try:
        model = Deployment.model_validate(data)
    except ValidationError as error:
        problems = [_problem_from_pydantic(e, source, lines) for e in error.errors()]
        raise ConfigError(problems) from None
    problems = cross_section_problems(model, source, lines)
    if problems:
        raise ConfigError(problems)
    return _resolve_paths(model, source.resolve().parent), lines


def load_deployment(path: Path) -> tuple[Deployment, LineMap]:
    """Read `path` and load it; a missing or unreadable file is a ConfigError too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [
                ConfigProblem(
                    path,
                    None,
                    "",
                    "no such file",
                    "create one with `homeport init DIR`, or point to it with -c FILE",
                )
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            [ConfigProblem(path, None, "", f"cannot read the file: {error}")]
        ) from None
    return load_deployment_text(text, path)
