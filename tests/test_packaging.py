"""What users install is what CI tests: constraints.txt pins every dependency, within range."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_every_dependency_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside {requirement.specifier}"
        )


def test_the_floors_are_past_the_known_advisories() -> None:
    floors = {
        "starlette": "0.49.1",
        "python-multipart": "0.0.27",
        "cryptography": "44.0.1",
        "jinja2": "3.1.6",
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    by_name = {
        canonicalize_name(Requirement(t).name): Requirement(t) for t in project["dependencies"]
    }
    for name, floor in floors.items():
        specifier = by_name[name].specifier
        assert not specifier.contains(_below(floor)), f"{name} admits releases before {floor}"


def _below(version: str) -> str:
    """A release just before `version` (0.49.1 -> 0.49.0, 3.1.6 -> 3.1.5, 44.0.1 -> 44.0.0)."""
    parts = [int(p) for p in version.split(".")]
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] > 0:
            parts[index] -= 1
            break
    return ".".join(str(p) for p in parts)
