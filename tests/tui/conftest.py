"""Fixtures for the TUI tests: a seeded workspace (built once, copied per test) and an app factory.

Time is frozen (`tui_seed.NOW`) and the time zone is UTC so that ages and event times in snapshots
never change; the CLI is a fake script (`fake_cli.py`) that records what the TUI asked it to do.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

os.environ["TZ"] = "UTC"
time.tzset()

from sdtui.app import SdtuiApp, make_app  # noqa: E402

from tui_seed import NOW, seed_workspace  # noqa: E402

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    home = tmp_path_factory.mktemp("template") / "workspace"
    ids = seed_workspace(home)
    return home, ids


@pytest.fixture
def home(seeded_template, tmp_path) -> Path:
    """A fresh copy of the seeded workspace (tests write command rows into it)."""
    template, _ = seeded_template
    dest = tmp_path / "workspace"
    dest.mkdir()
    shutil.copy(template / "sdtui.db", dest / "sdtui.db")
    return dest


@pytest.fixture
def ids(seeded_template) -> dict[str, int]:
    return seeded_template[1]


@pytest.fixture
def cli_log(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "cli.log"
    monkeypatch.setenv("FAKE_CLI_LOG", str(log))
    return log


@pytest.fixture
def app_factory(home, cli_log, monkeypatch):
    """make(campaign=None, theme="sdtui-dark") -> an app on the seeded workspace with frozen time."""
    monkeypatch.chdir(HERE)  # the launch screen shows campaign files relative to the working directory

    def make(campaign: int | None = None, theme: str = "sdtui-dark", **kwargs) -> SdtuiApp:
        kwargs.setdefault("now", lambda: NOW)
        kwargs.setdefault("cli_argv", [sys.executable, str(HERE / "fake_cli.py"), "--home", str(home)])
        kwargs.setdefault("campaign_dirs", [Path("campaigns")])
        return make_app(home, theme=theme, campaign=campaign, **kwargs)

    return make
