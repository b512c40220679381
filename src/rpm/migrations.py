"""Running Alembic from code: `rpm migrate` and the test fixtures both come through here."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from alembic import command


def alembic_dir() -> Path:
    """The `alembic/` folder of the source tree (or of the working directory in an image)."""
    for candidate in (Path(__file__).resolve().parents[2] / "alembic", Path.cwd() / "alembic"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("cannot find the alembic/ folder with the migrations")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(alembic_dir()))
    if url:
        config.attributes["database_url"] = url
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(url: str) -> None:
    command.upgrade(alembic_config(url), "head")
