"""The image's commands, from a clean install made the way the Dockerfile makes the image (no
Docker engine runs here): the build context that .dockerignore leaves, the wheel built from it,
a venv without pip holding the runtime lock (hashes checked) and the wheel, and a working
directory holding only alembic/. Every command runs from that directory with the image's ENV,
with the venv for /opt/rpm, so nothing of the repository is on sys.path.

Then `rpm migrate` against a scratch database, `rpm api` until /healthz answers and the image's
HEALTHCHECK passes, `rpm ingest` signed in to a broker with the deployment's ACL as the workers'
user until compose's healthcheck passes and a gateway gets its ack; each stops on SIGTERM with 0.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml

from rpm.migrations import head_revision
from tests.fixtures.servers import free_port, postgres_server, scratch_database
from tests.packaging.broker import (
    ACL_BROKER_CONF,
    ACL_FILE,
    INGEST_USER,
    SHARE_GROUP,
    USERS,
    Client,
    running_mosquitto,
    write_passwords,
)
from tests.packaging.dockerfile import dockerignore_patterns, final_stage, ignored, parse

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
DOCKERFILE = parse((REPO / "Dockerfile").read_text())

pytestmark = pytest.mark.slow


@dataclass
class Image:
    root: Path
    venv: Path  # /opt/rpm in the image
    workdir: Path  # /app in the image
    wheel: Path

    def environment(self, **settings: str) -> dict[str, str]:
        """The image's ENV (the venv for /opt/rpm), a production deployment's settings, and `settings`."""
        environment = {"HOME": str(self.root), "LANG": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin"}
        for instruction in final_stage(DOCKERFILE):
            if instruction.keyword == "ENV":
                for pair in shlex.split(instruction.arguments):
                    key, _, value = pair.partition("=")
                    environment[key] = value.replace("/opt/rpm", str(self.venv)).replace("$PATH", environment["PATH"])
        environment.update(
            # The issuer is only asked when a token arrives; none does here.
            RPM_OIDC_ISSUER="https://issuer.invalid",
            RPM_OIDC_JWKS_URL="https://issuer.invalid/jwks.json",
        )
        environment.update(settings)
        return environment

    def run(self, *command: str, cwd: Path | None = None, **settings: str) -> subprocess.CompletedProcess[str]:
        environment = self.environment(**settings)
        folder = cwd or self.workdir
        return subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, timeout=120)


def copy_build_context(destination: Path) -> None:
    patterns = dockerignore_patterns((REPO / ".dockerignore").read_text())

    def skip(folder: str, names: list[str]) -> set[str]:
        base = Path(folder).relative_to(REPO).as_posix()
        return {name for name in names if ignored(name if base == "." else f"{base}/{name}", patterns)}

    shutil.copytree(REPO, destination, ignore=skip, symlinks=True)


def check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{shlex.join(map(str, result.args))} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    root = tmp_path_factory.mktemp("image")
    context = root / "context"
    copy_build_context(context)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    # The builder stage's steps, in its order.
    venv = root / "opt-rpm"
    check(subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], capture_output=True, text=True))
    into_venv = [*pip, "--python", str(venv / "bin" / "python")]
    lock = context / "requirements" / "runtime.lock"
    check(subprocess.run([*into_venv, "install", "--require-hashes", "-r", lock], capture_output=True, text=True))
    wheels = root / "wheels"
    check(subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", wheels, context], capture_output=True, text=True))
    (wheel,) = wheels.glob("rpm_backend-*.whl")
    check(subprocess.run([*into_venv, "install", "--no-deps", wheel], capture_output=True, text=True))
    check(subprocess.run([*into_venv, "check"], capture_output=True, text=True))
    # The final stage: the venv, and what it copies from the context into its working directory.
    workdir = root / "app"
    workdir.mkdir()
    for instruction in final_stage(DOCKERFILE):
        if instruction.keyword == "COPY" and not instruction.arguments.startswith("--"):
            source, target = instruction.arguments.split()
            assert not target.startswith("/"), f"COPY {source} {target}: the test maps only the WORKDIR"
            shutil.copytree(context / source, workdir / target)
    return Image(root, venv, workdir, wheel)


@pytest.fixture(scope="session")
def image_database(image: Image) -> Iterator[str]:
    with postgres_server() as maintenance, scratch_database(maintenance) as url:
        check(image.run("rpm", "migrate", RPM_DATABASE_URL=url))
        yield url


@pytest.fixture(scope="module")
def deployment_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A broker of its own with the deployment's ACL: the worker's session must not outlive it."""
    folder = tmp_path_factory.mktemp("image-broker")
    port = free_port()
    config = ACL_BROKER_CONF.format(port=port, passwords=write_passwords(folder / "passwords", USERS), acl=ACL_FILE)
    with running_mosquitto(config, folder, [port]):
        yield port


class Running:
    """A started process with its output in a file, to be stopped as the container runtime does."""

    def __init__(self, image: Image, command: list[str], name: str, **settings: str) -> None:
        self.log = image.root / f"{name}-{time.monotonic_ns()}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command, cwd=image.workdir, env=image.environment(**settings), stdout=log, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text()

    def wait_until_answering(self, url: str, timeout: float = 60) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"exited with {self.process.returncode}:\n{self.output()}"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return bytes(response.read())
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, f"{url} did not answer within {timeout} s:\n{self.output()}"
                time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM, as `docker stop` sends; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running 30 s after SIGTERM:\n{self.output()}") from None


def healthcheck_command() -> list[str]:
    (instruction,) = [i for i in final_stage(DOCKERFILE) if i.keyword == "HEALTHCHECK"]
    return json.loads(instruction.arguments.split("CMD", 1)[1])


def test_the_distribution_installs_only_the_rpm_package(image: Image):
    probe = """
import importlib.metadata, importlib.util, json, sys
distribution = importlib.metadata.distribution("rpm-backend")
print(json.dumps({
    "top_level": distribution.read_text("top_level.txt").split(),
    "roots": sorted({f.parts[0] for f in distribution.files if f.parts[0] != ".."}),
    "scripts": {e.name: e.value for e in distribution.entry_points if e.group == "console_scripts"},
    "found": {name: importlib.util.find_spec(name) is not None
              for name in ("api", "ingest", "simulator", "rpm.api", "rpm.ingest", "rpm.simulator")},
    "templates": sum(1 for f in distribution.files if f.match("rpm/api/web/templates/*.html")),
    "pip": importlib.util.find_spec("pip") is not None,
    "path": sys.path,
}))
"""
    found = json.loads(check(image.run("python", "-c", probe)).stdout)
    assert found["top_level"] == ["rpm"]
    assert found["roots"] == ["rpm", image.wheel.name.split("-py3")[0] + ".dist-info"]
    assert found["scripts"] == {"rpm": "rpm.cli:main"}
    assert found["found"] == {
        "api": False,
        "ingest": False,
        "simulator": False,
        "rpm.api": True,
        "rpm.ingest": True,
        "rpm.simulator": True,
    }
    assert found["templates"] > 0, "the staff page's templates are not in the wheel"
    assert not found["pip"], "the image's venv carries no pip"
    assert not any(entry.startswith(str(REPO)) for entry in found["path"] if entry)


def test_rpm_migrate_brings_a_new_database_to_the_latest_schema_and_can_run_again(image: Image, image_database: str):
    with psycopg.connect(image_database) as connection:
        (version,) = connection.execute("select version_num from alembic_version").fetchone() or (None,)
    assert version == head_revision()
    again = check(image.run("rpm", "migrate", RPM_DATABASE_URL=image_database))
    assert "database is at the latest schema" in again.stdout


def test_rpm_migrate_outside_the_images_working_directory_says_what_is_missing(image: Image, image_database: str):
    elsewhere = image.root / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    result = image.run("rpm", "migrate", cwd=elsewhere, RPM_DATABASE_URL=image_database)
    assert result.returncode != 0
    assert "cannot find the alembic/ folder" in result.stderr


def test_rpm_api_answers_its_healthcheck_and_stops_cleanly(image: Image, image_database: str):
    port = free_port()
    command = [*COMPOSE["api"]["command"]]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    api = Running(image, command, "api", RPM_DATABASE_URL=image_database)
    try:
        assert json.loads(api.wait_until_answering(f"http://127.0.0.1:{port}/healthz")) == {"status": "ok"}
        assert json.loads(api.wait_until_answering(f"http://127.0.0.1:{port}/readyz"))["status"] == "ready"
        probe = healthcheck_command()
        assert "http://127.0.0.1:8000/healthz" in " ".join(probe), "the image's API listens on 8000"
        check(image.run(*probe, HEALTHCHECK_URL=f"http://127.0.0.1:{port}/healthz"))
        refused = image.run(*probe, HEALTHCHECK_URL=f"http://127.0.0.1:{free_port()}/healthz")
        assert refused.returncode != 0, "the healthcheck passes with nothing listening"
    finally:
        code = api.stop()
    assert code == 0, api.output()


def test_rpm_ingest_signs_in_as_the_workers_user_answers_a_gateway_and_stops_cleanly(
    image: Image, image_database: str, deployment_broker: int
):
    metrics_port = free_port()
    worker_environment = COMPOSE["ingest-1"]["environment"]
    worker = Running(
        image,
        COMPOSE["ingest-1"]["command"],
        "ingest",
        RPM_DATABASE_URL=image_database,
        RPM_MQTT_URL=f"mqtt://127.0.0.1:{deployment_broker}",
        RPM_MQTT_USERNAME=worker_environment["RPM_MQTT_USERNAME"],
        RPM_MQTT_PASSWORD=USERS[worker_environment["RPM_MQTT_USERNAME"]],
        RPM_MQTT_SHARE_GROUP=worker_environment["RPM_MQTT_SHARE_GROUP"],
        RPM_MQTT_CLIENT_ID=worker_environment["RPM_MQTT_CLIENT_ID"],
        RPM_METRICS_PORT=str(metrics_port),
    )
    assert worker_environment["RPM_MQTT_USERNAME"] == INGEST_USER
    assert worker_environment["RPM_MQTT_SHARE_GROUP"] == SHARE_GROUP
    gateway = Client(deployment_broker, "gw-a", USERS["gw-a"]).signed_in()
    try:
        assert json.loads(worker.wait_until_answering(f"http://127.0.0.1:{metrics_port}/readyz")) == {
            "status": "ready"
        }
        probe = [part.replace(":9464/", f":{metrics_port}/") for part in COMPOSE["ingest-1"]["healthcheck"]["test"][1:]]
        check(image.run(*probe))

        gateway.subscribe("rpm/v1/gateways/gw-a/acks")
        gateway.publish("rpm/v1/gateways/gw-a/measurements", b"not json")
        ack = gateway.next_message(timeout=20)
        assert ack.topic == "rpm/v1/gateways/gw-a/acks"
        (result,) = json.loads(ack.payload)["results"]
        assert (result["id"], result["status"], result["reason"]) == (None, "rejected", "bad_json")
        metrics = worker.wait_until_answering(f"http://127.0.0.1:{metrics_port}/metrics").decode()
        assert re.search(r'^rpm_readings_rejected_total\{reason="bad_json"\} 1\.0$', metrics, flags=re.M)
    finally:
        gateway.close()
        code = worker.stop()
    assert code == 0, worker.output()
