"""Snapshots of every screen at 80x24 (the SSH baseline) and 160x48, on the seeded workspace.

Time is frozen and the zone is UTC (conftest), so ages and event times never change. After an
intended change of the UI: `pytest tests/tui/test_snapshots.py --snapshot-update`, then look at the
report / SVGs under __snapshots__ before committing them.
"""

from __future__ import annotations

import pytest

from sdtui.screens.campaigns import CampaignsScreen
from sdtui.screens.confirm import ConfirmScreen
from sdtui.screens.dashboard import DashboardScreen
from sdtui.screens.help import HelpScreen
from sdtui.screens.launch import LaunchScreen
from sdtui.screens.samples import CompareScreen, SamplesScreen

from tuitest import settle, wait_for, wait_loaded

SMALL, LARGE = (80, 24), (160, 48)


def steps(*keys: str, screen=None):
    """run_before: wait for the first screen's data, press keys, wait for `screen` to load."""

    async def run(pilot):
        await wait_loaded(pilot)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.05)
        await wait_loaded(pilot, screen)
        await settle(pilot)

    return run


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_campaigns(snap_compare, app_factory, size):
    assert snap_compare(app_factory(), terminal_size=size, run_before=steps(screen=CampaignsScreen))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_dashboard_finished(snap_compare, app_factory, ids, size):
    app = app_factory(campaign=ids["finished"])
    assert snap_compare(app, terminal_size=size, run_before=steps(screen=DashboardScreen))


@pytest.mark.parametrize("pane", ["2", "3", "4", "5"], ids=["buckets", "diversity", "passk", "events"])
def test_dashboard_panes(snap_compare, app_factory, ids, pane):
    app = app_factory(campaign=ids["finished"])
    assert snap_compare(app, terminal_size=SMALL, run_before=steps(pane, screen=DashboardScreen))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_dashboard_running(snap_compare, app_factory, ids, size):
    app = app_factory(campaign=ids["running"])
    assert snap_compare(app, terminal_size=size, run_before=steps(screen=DashboardScreen))


def test_dashboard_engine_lost(snap_compare, app_factory, ids):
    app = app_factory(campaign=ids["lost"])
    assert snap_compare(app, terminal_size=SMALL, run_before=steps(screen=DashboardScreen))


def test_dashboard_heldout_transitions(snap_compare, app_factory, ids):
    app = app_factory(campaign=ids["finished"])
    assert snap_compare(app, terminal_size=SMALL, run_before=steps("2", "h", "left_square_bracket",
                                                                   screen=DashboardScreen))


def _browser(ids, **kw):
    async def run(pilot):
        await wait_loaded(pilot, CampaignsScreen)
        screen = SamplesScreen(ids["finished"], **kw)
        pilot.app.push_screen(screen)
        await wait_loaded(pilot, SamplesScreen)
        await wait_for(pilot, lambda: screen.rows and screen.current is not None)
        return screen

    return run


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_sample_browser(snap_compare, app_factory, ids, size):
    async def run(pilot):
        screen = await _browser(ids, task_id="HumanEval/9", round=0, status="failed")(pilot)
        await settle(pilot)
        assert screen.current["status"] == "failed"

    assert snap_compare(app_factory(), terminal_size=size, run_before=run)


def test_sample_browser_error_sample(snap_compare, app_factory, ids):
    async def run(pilot):
        await _browser(ids, task_id="HumanEval/17", status="error")(pilot)
        await settle(pilot)

    assert snap_compare(app_factory(), terminal_size=SMALL, run_before=run)


@pytest.mark.parametrize("diff", [False, True], ids=["side", "diff"])
def test_compare(snap_compare, app_factory, ids, diff):
    async def run(pilot):
        screen = await _browser(ids, task_id="HumanEval/9", round=0)(pilot)
        await pilot.press("j", "j", "j", "j", "m", "k", "d" if diff else "c")
        await wait_loaded(pilot, CompareScreen)
        assert screen.marked is not None
        await settle(pilot)

    assert snap_compare(app_factory(), terminal_size=SMALL, run_before=run)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_launch(snap_compare, app_factory, size):
    assert snap_compare(app_factory(), terminal_size=size, run_before=steps("n", screen=LaunchScreen))


def test_launch_invalid_file(snap_compare, app_factory):
    async def run(pilot):
        await wait_loaded(pilot, CampaignsScreen)
        await pilot.press("n")
        launch = await wait_loaded(pilot, LaunchScreen)
        await pilot.press("down")
        await wait_for(pilot, lambda: launch.path.endswith("typo.toml") and launch.error)
        await settle(pilot)

    assert snap_compare(app_factory(), terminal_size=SMALL, run_before=run)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_help(snap_compare, app_factory, size):
    assert snap_compare(app_factory(), terminal_size=size, run_before=steps("question_mark", screen=HelpScreen))


def test_confirm_stop(snap_compare, app_factory, ids):
    app = app_factory(campaign=ids["running"])
    assert snap_compare(app, terminal_size=SMALL, run_before=steps("x", screen=ConfirmScreen))


@pytest.mark.parametrize("theme", ["sdtui-light", "sdtui-ember", "sdtui-ansi"])
def test_themes(snap_compare, app_factory, ids, theme):
    app = app_factory(campaign=ids["finished"], theme=theme)
    assert snap_compare(app, terminal_size=SMALL, run_before=steps(screen=DashboardScreen))
