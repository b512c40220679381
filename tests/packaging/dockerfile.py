"""Just enough of Docker's file formats for the packaging tests: the Dockerfile's instructions by
stage, and which paths .dockerignore leaves out of the build context."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass
class Instruction:
    keyword: str
    arguments: str


def parse(text: str) -> list[list[Instruction]]:
    """The stages, each a list of its instructions (its FROM first); comments dropped, continuations joined."""
    stages: list[list[Instruction]] = [[]]
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append(Instruction(keyword.upper(), " ".join(arguments.split())))
    return stages  # stages[0]: what comes before the first FROM (ARG)


def final_stage(stages: list[list[Instruction]]) -> list[Instruction]:
    return stages[-1]


def dockerignore_patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves out this path (relative to the context), as far as our file uses
    the syntax: names, globs and **/ prefixes; a folder left out takes everything under it."""
    path = PurePosixPath(relative)
    for prefix in [*reversed(path.parents[:-1]), path]:
        for pattern in patterns:
            if fnmatch.fnmatch(str(prefix), pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatch(prefix.name, pattern[3:]):
                return True
    return False
