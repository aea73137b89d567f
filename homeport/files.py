"""Small file helpers: secrets are written 0600 from the first byte, and atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import yaml


def ensure_dir(path: Path, mode: int = 0o700) -> Path:
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    return path


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write through a temporary file and rename, so readers never see half a file.

    The temporary file is created with `mode` already set: a private key is
    never readable by others, not even for an instant.
    """
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_private(path: Path, data: bytes) -> None:
    write_atomic(path, data, mode=0o600)


def read_or_create_private(path: Path, make: bytes) -> bytes:
    """Return the file's content, writing `make` first only if the file is absent.

    Secrets are generated once: an existing file always wins.
    """
    if path.exists():
        return path.read_bytes()
    write_private(path, make)
    return make


def dump_yaml(data: object) -> bytes:
    """A rendered YAML file, headed by where it comes from."""
    header = b"# Rendered by Homeport from homeport.yaml: edit that file, not this one.\n"
    return header + yaml.safe_dump(data, sort_keys=False).encode()
