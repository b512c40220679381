"""What the Dockerfile promises and no Docker engine here can show by running it: two stages, the
final one small (nothing compiled or installed in it), not root, with a healthcheck; and a build
context without secrets. test_clean_install.py runs the image's steps and commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.packaging.dockerfile import Instruction, dockerignore_patterns, final_stage, ignored, parse

REPO = Path(__file__).resolve().parents[2]
STAGES = parse((REPO / "Dockerfile").read_text())
FINAL = final_stage(STAGES)


def arguments(stage: list[Instruction], keyword: str) -> list[str]:
    return [instruction.arguments for instruction in stage if instruction.keyword == keyword]


def test_a_builder_stage_and_a_final_stage_on_python_311_slim():
    assert len(STAGES) == 3, "ARGs, the builder, the image"
    assert arguments(STAGES[0], "ARG") == ["PYTHON_IMAGE=python:3.11-slim-bookworm"]
    assert arguments(STAGES[1], "FROM") == ["${PYTHON_IMAGE} AS builder"]
    assert arguments(FINAL, "FROM") == ["${PYTHON_IMAGE}"]


def test_the_builder_installs_exactly_the_runtime_lock_and_the_wheel():
    commands = " ".join(arguments(STAGES[1], "RUN"))
    assert "install --require-hashes -r requirements/runtime.lock" in commands
    assert "pip wheel --no-deps" in commands
    assert "install --no-deps /wheels/rpm_backend-*.whl" in commands
    assert "check" in commands


def test_the_final_stage_copies_the_venv_and_installs_nothing():
    assert "--from=builder /opt/rpm /opt/rpm" in arguments(FINAL, "COPY")
    runs = arguments(FINAL, "RUN")
    assert len(runs) == 1 and re.fullmatch(r"groupadd [^&]+ && useradd [^&]+", runs[0]), "only the user is made there"
    assert not re.search(r"apt-get|apk|pip |gcc|build-essential", " ".join(runs))


def test_the_image_runs_as_an_unprivileged_user():
    (user,) = arguments(FINAL, "USER")
    uid = re.search(r"--uid (\d+)", arguments(FINAL, "RUN")[0])
    gid = re.search(r"--gid (\d+)", arguments(FINAL, "RUN")[0])
    assert uid and gid and user == f"{uid.group(1)}:{gid.group(1)}" and int(uid.group(1)) >= 1000
    # Everything copied in stays root's: the process cannot change its own code.
    assert not any("--chown" in copy for copy in arguments(FINAL, "COPY"))


def test_the_default_command_and_healthcheck_are_the_apis_on_the_composed_port():
    (command,) = arguments(FINAL, "CMD")
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    assert json.loads(command) == compose["api"]["command"]
    (healthcheck,) = arguments(FINAL, "HEALTHCHECK")
    options, probe = healthcheck.split(" CMD ", 1)
    assert "--start-period=" in options and "--timeout=" in options
    assert "http://127.0.0.1:8000/healthz" in " ".join(json.loads(probe))
    assert "RPM_ENVIRONMENT=production" in " ".join(arguments(FINAL, "ENV"))


def test_the_build_context_leaves_out_secrets_and_the_developers_files():
    patterns = dockerignore_patterns((REPO / ".dockerignore").read_text())
    # Whatever git is told to ignore (local state, secrets) stays out of the image too.
    gitignored = dockerignore_patterns((REPO / ".gitignore").read_text())
    for path in [*gitignored, ".git", "tests", "deploy/mosquitto/acl", "src/rpm/__pycache__/x.pyc"]:
        assert ignored(path.rstrip("/"), patterns), path
    for path in ["pyproject.toml", "README.md", "src/rpm/cli.py", "api/app.py", "alembic/env.py"]:
        assert not ignored(path, patterns), path
    assert not ignored("requirements/runtime.lock", patterns)
