"""Load `homeport.yaml` into the model, reporting every problem with file, line and key.

YAML is read with ruamel.yaml, which remembers where each key stands; pydantic
then validates the plain data and each of its errors is mapped back to a line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from homeport.config.model import (
    RESERVED_SYNAPSE_KEYS,
    AdminSite,
    Deployment,
    Homeserver,
    Policy,
    PublicationRule,
    RoomPolicy,
    TlsFiles,
    UserDirectory,
)
from homeport.config.types import check_server_name
from homeport.errors import ConfigError, ConfigProblem

Path_ = tuple[str | int, ...]


class LineMap:
    """Where each key of the file stands, by its dotted path (1-based lines)."""

    def __init__(self, lines: dict[Path_, int]) -> None:
        self._lines = lines

    def line_of(self, path: Iterable[str | int]) -> int | None:
        """The line of `path`, or of its nearest ancestor that the file spells out."""
        parts = tuple(path)
        while parts:
            if parts in self._lines:
                return self._lines[parts]
            parts = parts[:-1]
        return self._lines.get((), None)


def dotted(path: Iterable[str | int]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")


def _plain(node: Any, path: Path_, lines: dict[Path_, int]) -> Any:
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
    lines: dict[Path_, int] = {(): 1}
    return _plain(data, (), lines), LineMap(lines)


_NESTED_SHAPES: dict[tuple[str, ...], type[BaseModel]] = {
    ("tls",): TlsFiles,
    ("policy",): Policy,
    ("policy", "user_directory"): UserDirectory,
    ("policy", "rooms"): RoomPolicy,
    ("policy", "room_list_publication_rules"): PublicationRule,
}


def _allowed_keys(path: Path_) -> list[str]:
    """The keys allowed at `path`, for 'did you mean' hints."""
    shape: type[BaseModel] = Deployment
    if path == ("admin",):
        shape = AdminSite
    if len(path) >= 2 and path[0] == "homeservers":
        inner = tuple(str(p) for p in path[2:] if not isinstance(p, int))
        shape = _NESTED_SHAPES.get(inner, Homeserver)
    return list(shape.model_fields)


def _problem_from_pydantic(error: Any, source: Path, lines: LineMap) -> ConfigProblem:
    # Pydantic marks errors in a mapping key with a "[key]" step; the key itself names it.
    loc: Path_ = tuple(part for part in error["loc"] if part != "[key]")
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


def _addresses_overlap(a: str, b: str) -> bool:
    """Two listeners clash if they bind the same address or either binds all of them."""
    return a == b or ip_address(a).is_unspecified or ip_address(b).is_unspecified


def _semantic_problems(model: Deployment, source: Path, lines: LineMap) -> list[ConfigProblem]:
    """Checks across homeservers that no single field can make."""
    problems: list[ConfigProblem] = []
    seen_names: dict[str, str] = {}
    seen_ports: dict[tuple[str, int], str] = {}
    for name, hs in model.homeservers.items():
        base: Path_ = ("homeservers", name)
        if hs.server_name in seen_names:
            problems.append(
                ConfigProblem(
                    source,
                    lines.line_of((*base, "server_name")),
                    dotted((*base, "server_name")),
                    f"server name {hs.server_name!r} is already used by homeserver "
                    f"{seen_names[hs.server_name]!r}",
                    "every homeserver needs its own server name",
                )
            )
        seen_names.setdefault(hs.server_name, name)
        clash = next(
            (
                other
                for (address, port), other in seen_ports.items()
                if port == hs.port and _addresses_overlap(address, hs.address)
            ),
            None,
        )
        if clash is not None:
            problems.append(
                ConfigProblem(
                    source,
                    lines.line_of((*base, "port")),
                    dotted((*base, "port")),
                    f"port {hs.port} is already used by homeserver {clash!r}",
                    "give each homeserver its own port",
                )
            )
        seen_ports.setdefault((hs.address, hs.port), name)
        if hs.federation_port != hs.port and hs.public_baseurl is None:
            problems.append(
                ConfigProblem(
                    source,
                    lines.line_of((*base, "port")),
                    dotted((*base, "port")),
                    f"other servers will connect to port {hs.federation_port} (from server name "
                    f"{hs.server_name!r}) but this homeserver listens on {hs.port}",
                    f"set port: {hs.federation_port}, or put port {hs.port} in the server name",
                )
            )
        for index, entry in enumerate(hs.policy.federation_domain_whitelist or []):
            if entry in model.homeservers or entry.startswith("@") or "*" in entry:
                continue  # user IDs and patterns: `homeport lint` explains what to do instead
            try:
                check_server_name(entry)
            except ValueError as error:
                path = (*base, "policy", "federation_domain_whitelist", index)
                problems.append(
                    ConfigProblem(
                        source,
                        lines.line_of(path),
                        dotted(path),
                        f"{entry!r} is neither a homeserver of this file nor a server name "
                        f"({error})",
                        f"use a server name such as matrix.example.org:8448, or one of: "
                        f"{', '.join(model.homeservers)}",
                    )
                )
        for key in hs.synapse:
            if key in RESERVED_SYNAPSE_KEYS:
                path = (*base, "synapse", key)
                problems.append(
                    ConfigProblem(
                        source,
                        lines.line_of(path),
                        dotted(path),
                        f"Synapse setting {key!r} is managed by Homeport",
                        RESERVED_SYNAPSE_KEYS[key],
                    )
                )
    if model.admin is not None:
        admin = model.admin
        clash = next(
            (
                other
                for (address, port), other in seen_ports.items()
                if port == admin.port and _addresses_overlap(address, admin.address)
            ),
            None,
        )
        if clash is not None:
            problems.append(
                ConfigProblem(
                    source,
                    lines.line_of(("admin", "port")),
                    "admin.port",
                    f"port {admin.port} is already used by homeserver {clash!r}",
                    "give the admin website a port of its own",
                )
            )
    return problems


def _resolve_paths(model: Deployment, base_dir: Path) -> Deployment:
    """Relative paths in the file are relative to the file, not to the caller's cwd."""

    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else (base_dir / path).resolve()

    homeservers = {
        name: hs.model_copy(
            update={
                "tls": None
                if hs.tls is None
                else TlsFiles(certificate=absolute(hs.tls.certificate), key=absolute(hs.tls.key))
            }
        )
        for name, hs in model.homeservers.items()
    }
    return model.model_copy(
        update={
            "data_dir": absolute(model.data_dir),
            "trusted_ca_files": [absolute(p) for p in model.trusted_ca_files],
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
    problems = _semantic_problems(model, source, lines)
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
