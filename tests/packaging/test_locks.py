"""The lock files pin what pyproject.toml asks for: every requirement there is pinned, at a version
it allows, with hashes; the test lock pins the runtime packages at the runtime lock's versions, so
CI tests what the image ships. (pip --require-hashes refuses a lock that leaves a dependency
out: scripts/setup and test_clean_install.py install them that way.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^ ;\\]+)")


def pins(name: str) -> dict[str, Version]:
    text = (REPO / "requirements" / name).read_text()
    found = {}
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            found[canonicalize_name(match.group(1))] = Version(match.group(2))
    return found


def unhashed(name: str) -> list[str]:
    """Pinned requirements that are not followed by at least one --hash."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", (REPO / "requirements" / name).read_text())
    return [entry.split()[0] for entry in entries if PIN.match(entry) and "--hash=sha256:" not in entry]


@pytest.mark.parametrize(
    ("lock", "requirements"),
    [
        ("runtime.lock", PROJECT["dependencies"]),
        (
            "test.lock",
            PROJECT["dependencies"]
            + PROJECT["optional-dependencies"]["test"]
            + PROJECT["optional-dependencies"]["demo"],
        ),
    ],
)
def test_every_requirement_of_pyproject_is_pinned_at_a_version_it_allows(lock, requirements):
    pinned = pins(lock)
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{lock} does not pin {requirement.name}: run requirements/regenerate"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{lock} pins {name}=={pinned[name]}, outside {requirement.specifier}: run requirements/regenerate"
        )


def test_the_test_lock_pins_the_runtime_packages_as_the_image_has_them():
    runtime, test = pins("runtime.lock"), pins("test.lock")
    assert {name: test.get(name) for name in runtime} == runtime


@pytest.mark.parametrize("lock", ["runtime.lock", "test.lock"])
def test_each_lock_has_hashes_and_says_how_it_is_made(lock):
    assert unhashed(lock) == []
    assert "#    requirements/regenerate" in (REPO / "requirements" / lock).read_text().splitlines()[1]
