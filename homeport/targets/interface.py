"""What every target answers: `render(deployment, context) -> Rendered`.

A target is where the deployment runs (`homeport render --target NAME`); the
table of them is `homeport.targets.registry.TARGETS`. The command line
parses, picks the target by name, writes `Rendered.files` into `--out` and
prints `Rendered.summary`: nothing about a target is decided there.

Preparing the data folder (keys, certificates, secrets made once, as `homeport
up` makes them) belongs to the runtime, a floor above this package: the
command line hands it over in the context, and a target calls it only when
its files need what the data folder holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from homeport.config.deployment import Deployment
from homeport.config.lines import LineMap
from homeport.errors import HomeportError
from homeport.layout import DeploymentLayout

PUBLIC = 0o644
PRIVATE = 0o600  # a file that holds a key or a secret


@dataclass(frozen=True)
class RenderContext:
    """Everything a target may need besides the model."""

    config_path: Path  # homeport.yaml, as the command line names it
    lines: LineMap  # where each of its keys stands, for problems found here
    out_dir: Path | None  # --out
    # Makes what the data folder lacks and renders Synapse's configs there, as `up` does.
    prepare: Callable[[Deployment], DeploymentLayout]
    python: Path  # the interpreter that runs `homeport` (what the units start)

    def out(self, target: str) -> Path:
        """--out, which a target that writes files cannot do without."""
        if self.out_dir is None:
            raise HomeportError(f"--target {target} writes files: name a folder with --out DIR")
        return self.out_dir


@dataclass(frozen=True)
class RenderedFile:
    text: str
    mode: int = PUBLIC


@dataclass(frozen=True)
class Summary:
    """What the command prints once the target has rendered: a table."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Rendered:
    """Files by their path under `out_dir` (none: the target wrote only to the data folder)."""

    files: dict[str, RenderedFile]
    summary: Summary
    out_dir: Path | None = None


Render = Callable[[Deployment, RenderContext], Rendered]


@dataclass(frozen=True)
class Target:
    name: str
    description: str  # what it renders, and where: one clause of `--target`'s help
    render: Render


def holds_secrets(name: str) -> bool:
    """Written 0600: a manifest with Secrets in it, a key, a PEM bundle."""
    path = Path(name)
    return "secret" in path.name or path.suffix in (".key", ".pem")


def files_into(target: str, out_dir: Path, texts: dict[str, str]) -> Rendered:
    """`texts` as the files of `target` under `out_dir`, listed in that order."""
    files = {
        name: RenderedFile(text, PRIVATE if holds_secrets(name) else PUBLIC)
        for name, text in texts.items()
    }
    summary = Summary(
        f"Rendered for {target} into {out_dir}", ("file",), tuple((name,) for name in files)
    )
    return Rendered(files, summary, out_dir)
