"""Pilot tests of the TUI on the seeded workspace: navigation, filters, controls, launch, themes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from textual.widgets import DataTable, Input, Select

from engine.store import Store
from sdtui.app import make_app
from sdtui.data import CampaignLister, DashboardLoader, allowed_verbs
from sdtui.fmt import safe
from sdtui.screens.campaigns import CampaignsScreen
from sdtui.screens.confirm import ConfirmScreen
from sdtui.screens.dashboard import DashboardScreen
from sdtui.screens.help import HelpScreen
from sdtui.screens.launch import LaunchScreen
from sdtui.screens.samples import CompareScreen, SamplesScreen
from sdtui.themes import load_themes, read_settings
from sdtui.widgets.code import sample_view
from sdtui.widgets.passgrid import PassGrid

from tuitest import read_cli_log, wait_for, wait_loaded
from tui_seed import NOW

ROOT = Path(__file__).resolve().parents[2]


def as_text(renderable) -> str:
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def commands(home: Path, cid: int) -> list[str]:
    store = Store(home / "sdtui.db")
    try:
        return [c["verb"] for c in store.commands(cid)]
    finally:
        store.close()


async def select_campaign(pilot, cid: int) -> CampaignsScreen:
    screen = await wait_loaded(pilot, CampaignsScreen)
    table = screen.query_one(DataTable)
    table.move_cursor(row=[c.id for c in screen.rows].index(cid))
    await pilot.pause()
    return screen


# ---------------------------------------------------------------------------- data (no UI)
def test_loaders_on_seeded_workspace(home, ids):
    store = Store(home / "sdtui.db")
    rows = {c.id: c for c in CampaignLister().load(store, NOW)}
    assert rows[ids["finished"]].status == "finished"
    assert rows[ids["running"]].status == "running"
    assert rows[ids["lost"]].status == "engine lost"
    assert rows[ids["finished"]].collapse == "warn" and rows[ids["finished"]].gauge < 70
    d = DashboardLoader(ids["running"]).load(store, NOW)
    assert d is not None and d.first and d.status == "running"
    live = [r for r in d.grid if r.live]
    assert live and all(r.live[0] == 1 for r in live)  # round 1's pass counts while it is verified
    finished = DashboardLoader(ids["finished"])
    grid = finished.load(store, NOW).grid
    assert {r.task_id for r in grid if r.unsolvable} == {"HumanEval/4", "HumanEval/44", "HumanEval/45",
                                                         "HumanEval/53", "HumanEval/54"}
    assert finished.load(store, NOW) is None  # nothing changed: nothing to redraw
    store.close()


def test_allowed_verbs():
    assert allowed_verbs("running") == {"pause", "stop", "stop_after_round"}
    assert allowed_verbs("paused") == {"resume", "stop", "stop_after_round"}
    assert allowed_verbs("engine lost") == {"resume"}
    assert allowed_verbs("finished") == set()


def test_safe_text_shows_control_characters():
    assert safe("a\x1b[2Jb\tc") == "a\\x1b[2Jb   c"
    assert safe("[bold]x[/]") == "[bold]x[/]"  # plain text: Text() never parses it as markup


def test_tui_modules_do_not_import_torch():
    code = ("import sys; import sdtui.app, sdtui.screens.dashboard, sdtui.screens.samples, sdtui.screens.launch, "
            "sdtui.screens.campaigns, sdtui.screens.help; "
            "bad = [m for m in ('torch', 'transformers', 'peft', 'accelerate') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------------------- navigation
async def test_campaigns_list_and_open_dashboard(app_factory, ids):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await wait_loaded(pilot, CampaignsScreen)
        statuses = {c.id: c.status for c in screen.rows}
        assert statuses == {ids["finished"]: "finished", ids["running"]: "running", ids["lost"]: "engine lost"}
        await select_campaign(pilot, ids["finished"])
        await pilot.press("enter")
        dash = await wait_loaded(pilot, DashboardScreen)
        assert dash.cid == ids["finished"]
        await pilot.press("escape")
        await wait_loaded(pilot, CampaignsScreen)


async def test_dashboard_panes_switch_with_number_keys(app_factory, ids):
    app = app_factory(campaign=ids["finished"])
    async with app.run_test(size=(80, 24)) as pilot:
        dash = await wait_loaded(pilot, DashboardScreen)
        for key, pane in zip("23451", ("buckets", "diversity", "passk", "events", "grid")):
            await pilot.press(key)
            assert dash.pane == pane
            assert dash.query_one(f"#pane-{pane}").display
            hidden = [p.id for p in dash.query(".pane") if p.id != f"pane-{pane}"]
            assert all(not dash.query_one(f"#{h}").has_class("-active") for h in hidden)


async def test_grid_sort_filter_and_enter_opens_samples(app_factory, ids):
    app = app_factory(campaign=ids["finished"])
    async with app.run_test(size=(80, 24)) as pilot:
        dash = await wait_loaded(pilot, DashboardScreen)
        grid = dash.query_one(PassGrid)
        assert grid.sort_key == "gain" and grid.shown[0].task_id == "HumanEval/26"  # +75 points
        await pilot.press("s")
        assert grid.sort_key == "task id"
        assert [r.task_id for r in grid.shown[:3]] == ["HumanEval/0", "HumanEval/4", "HumanEval/8"]
        await pilot.press("s")
        assert grid.sort_key == "pass count"
        await pilot.press("f", "f")  # all -> barely at r0 -> unsolvable
        assert grid.filter == "unsolvable" and len(grid.shown) == 5 and grid.row_count == 5
        assert all(r.unsolvable for r in grid.shown)
        await pilot.press("f", "f", "f", "f")  # -> hinted -> train -> heldout -> all
        assert grid.filter == "all" and grid.row_count == 22
        await pilot.press("s")  # back to gain; the cursor stayed on the problem it was on
        assert grid.current_task() == grid.shown[grid.cursor_row].task_id
        grid.move_cursor(row=0)
        await pilot.press("down", "enter")
        browser = await wait_loaded(pilot, SamplesScreen)
        assert browser.filter.task_id == "HumanEval/13"
        await wait_for(pilot, lambda: len(browser.rows) == 32, what="32 samples (4 rounds x 8)")
        assert {r["task_id"] for r in browser.rows} == {"HumanEval/13"}


async def test_sample_browser_filters_and_stepping(app_factory, ids):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, CampaignsScreen)
        app.push_screen(SamplesScreen(ids["finished"]))
        browser = await wait_loaded(pilot, SamplesScreen)
        await wait_for(pilot, lambda: len(browser.rows) == 22 * 8 * 4, what="all samples")
        first = browser.current_id
        await pilot.press("j", "j")
        await wait_for(pilot, lambda: browser.current is not None and browser.current["id"] == browser.rows[2]["id"],
                       what="third sample")
        await pilot.press("k")
        await wait_for(pilot, lambda: browser.current_id == browser.rows[1]["id"], what="second sample")
        assert first == browser.rows[0]["id"]

        browser.query_one("#f-status", Select).value = "timed out"
        await wait_for(pilot, lambda: browser.rows and {r["status"] for r in browser.rows} == {"timed out"},
                       what="status filter")
        browser.query_one("#f-round", Select).value = 2
        await wait_for(pilot, lambda: browser.rows and {(r["round"], r["status"]) for r in browser.rows}
                       == {(2, "timed out")}, what="round filter")
        browser.query_one("#f-round", Select).value = -1
        browser.query_one("#f-status", Select).value = ""
        await pilot.press("slash")
        assert browser.focused is browser.query_one("#f-text", Input)
        await pilot.press(*"not markup", "enter")
        await wait_for(pilot, lambda: len(browser.rows) == 1, what="text filter")
        await wait_for(pilot, lambda: browser.current is not None and browser.current["id"] == browser.rows[0]["id"])
        shown = as_text(sample_view(app, browser.current, browser.prompts[browser.current["task_id"]]))
        assert "# [bold red]not markup[/] \\x1b[31mnot a colour\\x1b[0m" in shown  # literally, escaped
        assert "AssertionError: [red]assert[/red]" in shown and "\x1b" not in shown
        assert browser.current["status"] == "failed"

        task = browser.query_one("#f-task", Input)
        task.value = "HumanEval/0"
        browser.query_one("#f-text", Input).value = ""
        await wait_for(pilot, lambda: len(browser.rows) == 32 and browser.filter.text is None, what="problem filter")
        assert {r["task_id"] for r in browser.rows} == {"HumanEval/0"}


async def test_compare_two_samples_side_by_side_and_diff(app_factory, ids):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, CampaignsScreen)
        app.push_screen(SamplesScreen(ids["finished"], task_id="HumanEval/9", round=0))
        browser = await wait_loaded(pilot, SamplesScreen)
        await wait_for(pilot, lambda: len(browser.rows) == 8)
        await pilot.press("m", "j", "c")
        compare = await wait_loaded(pilot, CompareScreen)
        assert (compare.a["id"], compare.b["id"]) == (browser.rows[0]["id"], browser.rows[1]["id"])
        assert compare.query_one("#compare-side").display and not compare.query_one("#compare-diff").display
        await pilot.press("d")
        assert compare.query_one("#compare-diff").display
        await pilot.press("escape")
        assert app.screen is browser


# ---------------------------------------------------------------------------- control
async def test_pause_on_dashboard_enqueues_a_pause_row(app_factory, home, ids):
    app = app_factory(campaign=ids["running"])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, DashboardScreen)
        await pilot.press("p")
        await wait_for(pilot, lambda: commands(home, ids["running"]) == ["pause"], what="a pause row")
    assert commands(home, ids["finished"]) == [] and commands(home, ids["lost"]) == []


async def test_stop_asks_first_and_no_means_no(app_factory, home, ids):
    app = app_factory(campaign=ids["running"])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, DashboardScreen)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: commands(home, ids["running"]) == ["stop"], what="a stop row")


async def test_stop_after_round_from_campaign_list(app_factory, home, ids):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await select_campaign(pilot, ids["running"])
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: commands(home, ids["running"]) == ["stop_after_round"], what="a row")


async def test_controls_that_make_no_sense_write_nothing(app_factory, home, ids):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await select_campaign(pilot, ids["finished"])
        await pilot.press("p", "x", "r")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)
        await select_campaign(pilot, ids["lost"])
        await pilot.press("p")
        await pilot.pause(0.3)
    assert commands(home, ids["finished"]) == [] and commands(home, ids["lost"]) == []


async def test_resume_of_a_lost_engine_goes_through_the_cli(app_factory, home, ids, cli_log):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await select_campaign(pilot, ids["lost"])
        await pilot.press("r")
        await wait_for(pilot, lambda: read_cli_log(cli_log), what="the CLI to run")
    assert read_cli_log(cli_log) == [["--home", str(home), "resume", str(ids["lost"])]]
    assert commands(home, ids["lost"]) == []  # no command row: there is no engine to read it


async def test_palette_runs_stop_after_round(app_factory, home, ids):
    app = app_factory(campaign=ids["running"])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, DashboardScreen)
        await pilot.press("ctrl+p")
        await pilot.press(*"stop campaign after")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: commands(home, ids["running"]) == ["stop_after_round"], what="a row")


async def test_help_lists_the_keys(app_factory):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, CampaignsScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = as_text(app.screen.render_help())
        for words in ("Stop when the current round ends", "Pause the campaign", "Command palette", "Sort by gain",
                      "Mark this sample", "Diff against", "restart a lost engine", "unsolvable"):
            assert words in text
        await pilot.press("escape")
        assert isinstance(app.screen, CampaignsScreen)


# ---------------------------------------------------------------------------- launch
async def test_launch_runs_the_cli_with_overrides_and_opens_the_dashboard(app_factory, home, cli_log):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, CampaignsScreen)
        await pilot.press("n")
        launch = await wait_loaded(pilot, LaunchScreen)
        assert launch.path == "campaigns/demo.toml" and launch.settings
        launch.query_one("#o-rounds", Input).value = "2"
        launch.query_one("#o-n", Input).value = "4"
        launch.query_one("#o-model", Input).value = "HuggingFaceTB/SmolLM2-135M-Instruct"
        await pilot.pause(0.5)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the new campaign's dashboard")
        assert app.screen.cid == 99
    argv = read_cli_log(cli_log)[0]
    assert argv[:4] == ["--home", str(home), "start", str(Path("campaigns/demo.toml"))]
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert sets == ['model.spec="HuggingFaceTB/SmolLM2-135M-Instruct"', "rounds=2", "sampling.n=4"]


async def test_launch_shows_the_cli_error_line(app_factory, cli_log):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, CampaignsScreen)
        await pilot.press("n")
        launch = await wait_loaded(pilot, LaunchScreen)
        launch.query_one("#o-model", Input).value = "missing/model"
        await pilot.pause(0.5)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: launch.error and not launch.starting, what="the error")
        assert launch.error.startswith('model "missing/model" not found')
        assert isinstance(app.screen, LaunchScreen)


async def test_launch_validates_the_file_before_starting(app_factory, cli_log):
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, CampaignsScreen)
        await pilot.press("n")
        launch = await wait_loaded(pilot, LaunchScreen)
        await pilot.press("down")  # typo.toml
        await wait_for(pilot, lambda: launch.path.endswith("typo.toml") and launch.error, what="validation")
        assert "unknown key" in launch.error and "temprature" in launch.error
        launch.query_one("#o-rounds", Input).value = "two"
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
    assert read_cli_log(cli_log) == []


# ---------------------------------------------------------------------------- themes, live updates
async def test_theme_flag_is_remembered(app_factory, home):
    assert {"sdtui-dark", "sdtui-light", "sdtui-ember", "sdtui-ansi"} <= set(load_themes())
    async with app_factory(theme="sdtui-light").run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, CampaignsScreen)
        assert pilot.app.theme == "sdtui-light"
    assert read_settings(home)["theme"] == "sdtui-light"
    app = make_app(home, now=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, CampaignsScreen)
        assert app.theme == "sdtui-light"
        app.theme = "sdtui-ember"  # e.g. from the palette
        await pilot.pause()
    assert read_settings(home)["theme"] == "sdtui-ember"


async def test_dashboard_follows_the_engine(app_factory, home, ids):
    """New progress and events written by an engine show up within the polling interval."""
    app = app_factory(campaign=ids["running"])
    async with app.run_test(size=(80, 24)) as pilot:
        dash = await wait_loaded(pilot, DashboardScreen)
        store = Store(home / "sdtui.db")
        store.heartbeat(ids["running"], {"stage": "verify", "round": 1, "done": 50, "total": 56, "unit": "samples"})
        store.log(ids["running"], "info", "a fresh event")
        store.close()
        await wait_for(pilot, lambda: dash.campaign["progress"].get("done") == 50, what="new progress")
        from sdtui.widgets.eventlog import EventLog

        await wait_for(pilot, lambda: dash.query_one(EventLog).events[-1]["text"] == "a fresh event", what="event")


async def test_two_tuis_on_one_workspace(app_factory, home, ids):
    a, b = app_factory(campaign=ids["running"]), app_factory(campaign=ids["running"])
    async with a.run_test(size=(80, 24)) as pa, b.run_test(size=(80, 24)) as pb:
        await wait_loaded(pa, DashboardScreen)
        await wait_loaded(pb, DashboardScreen)
        await pa.press("p")
        await pb.press("p")
        await wait_for(pa, lambda: commands(home, ids["running"]) == ["pause", "pause"], what="two rows")


def test_cli_log_helper_reads_json(tmp_path):
    log = tmp_path / "l"
    log.write_text(json.dumps(["a"]) + "\n")
    assert read_cli_log(log) == [["a"]]


async def test_resume_of_a_paused_campaign_is_a_command_row(app_factory, home, ids):
    store = Store(home / "sdtui.db")
    store.update_campaign(ids["running"], status="paused")
    store.close()
    app = app_factory(campaign=ids["running"])
    async with app.run_test(size=(80, 24)) as pilot:
        dash = await wait_loaded(pilot, DashboardScreen)
        assert dash.status == "paused"
        await pilot.press("p")  # already paused: nothing to send
        await pilot.press("r")
        await wait_for(pilot, lambda: commands(home, ids["running"]) == ["resume"], what="a resume row")


async def test_a_dead_engine_shows_as_lost(app_factory, ids):
    """No heartbeat for longer than the store's limit: the running campaign reads 'engine lost'."""
    app = app_factory(campaign=ids["running"], now=lambda: NOW + 60)
    async with app.run_test(size=(80, 24)) as pilot:
        dash = await wait_loaded(pilot, DashboardScreen)
        assert dash.status == "engine lost"
        assert "r to resume" in as_text(dash.query_one("#progress").render())


def test_run_tui_rejects_bad_input(home, ids):
    import pytest

    from engine.errors import UserError
    from sdtui.app import run_tui

    with pytest.raises(UserError, match="unknown theme 'nope'"):
        run_tui(home, theme="nope")
    with pytest.raises(UserError, match="no campaign 42"):
        run_tui(home, campaign=42)


async def test_sixteen_colour_terminals_get_the_ansi_theme(home):
    from rich.console import ColorSystem

    app = make_app(home, now=lambda: NOW)
    app.console._color_system = ColorSystem.STANDARD
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, CampaignsScreen)
        assert app.theme == "sdtui-ansi"
    assert "theme" not in read_settings(home)  # an automatic choice is not remembered


async def test_opening_another_problem_never_shows_the_previous_ones_samples(app_factory, ids):
    """The installed browser is shown only once the new problem's samples are in: no frame of the old one."""
    app = app_factory(campaign=ids["finished"])
    frames: list[str | None] = []
    display = app._display

    def record(screen, renderable):
        display(screen, renderable)
        if renderable is not None and isinstance(screen, SamplesScreen):
            frames.append(screen.current["task_id"] if screen.current else None)

    app._display = record
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, DashboardScreen)
        app.open_samples(ids["finished"], task_id="HumanEval/0")
        browser = await wait_loaded(pilot, SamplesScreen)
        await wait_for(pilot, lambda: browser.current and browser.current["task_id"] == "HumanEval/0")
        await pilot.press("escape")
        await wait_loaded(pilot, DashboardScreen)
        frames.clear()
        app.open_samples(ids["finished"], task_id="HumanEval/9")
        await wait_for(pilot, lambda: app.screen is browser and browser.current["task_id"] == "HumanEval/9")
        await pilot.pause()
        assert frames and set(frames) == {"HumanEval/9"}
        assert {r["task_id"] for r in browser.rows} == {"HumanEval/9"}


async def test_progress_says_the_first_batch_is_under_way(app_factory, ids):
    from sdtui.widgets.progress import StageProgress

    app = app_factory(campaign=ids["running"])
    async with app.run_test(size=(80, 24)) as pilot:
        dash = await wait_loaded(pilot, DashboardScreen)
        progress = dash.query_one(StageProgress)
        campaign = dict(dash.campaign, progress={"stage": "sample", "round": 0, "done": 0, "total": 160, "unit": "samples"})
        progress.set_data(campaign, "running", progress.info, None)
        assert "sampling the first batch" in as_text(progress.render())
        campaign["progress"] = dict(campaign["progress"], done=16, samples_per_s=0.5)
        progress.set_data(campaign, "running", progress.info, None)
        assert "sampling the first batch" not in as_text(progress.render())


async def test_hinted_campaign_shows_hints_partial_credit_and_budget(tmp_path):
    """Issue 8 in the TUI: hinted passes in the grid (and its filter), the hint, the partial credit
    and the problem's budget in the sample browser."""
    from engine.workspace import Workspace
    from tests.campaign_files import run_replay_campaign

    ws = Workspace.resolve(tmp_path / "ws")
    cid = run_replay_campaign(ws, tmp_path)
    app = make_app(ws.home, campaign=cid)
    async with app.run_test(size=(100, 30)) as pilot:
        dash = await wait_loaded(pilot, DashboardScreen)
        grid = dash.query_one(PassGrid)
        await wait_for(pilot, lambda: grid.row_count == 4, what="the grid")
        neg = [str(c) for c in grid.get_row("toy/neg")]
        assert neg[2] == "0/3+3h" and neg[3] == "1/3"  # round 0: no unhinted pass, three hinted ones
        assert "+Nh: hinted passes" in as_text(dash.query_one("#grid-info").render())
        while grid.filter != "hinted":
            await pilot.press("f")
        assert [r.task_id for r in grid.shown] == ["toy/neg"]
        await pilot.press("enter")
        browser = await wait_loaded(pilot, SamplesScreen)
        await wait_for(pilot, lambda: any(r["purpose"] == "hint" for r in browser.rows), what="toy/neg samples")
        hinted = next(r for r in browser.rows if r["purpose"] == "hint")
        browser.load_sample(hinted["id"])
        await wait_for(pilot, lambda: browser.current is not None and browser.current["id"] == hinted["id"])
        shown = as_text(sample_view(app, browser.current, browser.prompts["toy/neg"]))
        assert "hinted re-sample" in shown and "assert neg(-2) == 2" in shown and "0 - abs(x)" in shown
        assert "budget for the problem: 4 hinted re-samples" in shown and "asserts passed: 3/3" in shown
        first = next(r for r in browser.rows if r["purpose"] == "train" and r["round"] == 0 and r["idx"] == 2)
        browser.load_sample(first["id"])
        await wait_for(pilot, lambda: browser.current is not None and browser.current["id"] == first["id"])
        shown = as_text(sample_view(app, browser.current, browser.prompts["toy/neg"]))
        assert "asserts passed: 2/3 before the first failure" in shown
        assert "budget for the problem: 3 samples (even split)" in shown


def test_live_counts_of_a_training_round_being_sampled(tmp_path):
    """From round 1 on, the train stage records its figures in the round's metrics before the round
    is sampled: the grid must still show the live counts, and reload the stats when the metrics stage
    ends (a campaign run in tmux showed neither)."""
    import os
    import socket
    import time

    from engine.workspace import Workspace
    from tests.campaign_files import run_replay_campaign

    ws = Workspace.resolve(tmp_path / "ws")
    cid = run_replay_campaign(ws, tmp_path, extra="")
    store = Store(ws.db_path)
    final, stats = store.round(cid, 1)["metrics"], store.problem_stats(cid, 1)
    store.set_problem_stats(cid, 1, [])  # round 1 as it was while being sampled
    store.update_round(cid, 1, stage="sample", metrics={"training": final["training"]})
    store.update_campaign(cid, status="running", round=1, stage="sample", engine_pid=os.getpid(),
                          engine_host=socket.gethostname())
    store.heartbeat(cid, {"stage": "sample", "round": 1, "done": 16, "total": 16})
    loader = DashboardLoader(cid)
    data = loader.load(store, time.time())
    neg = next(r for r in data.grid if r.task_id == "toy/neg")
    assert neg.live == (1, 4, 1) and neg.cells[1] is None  # round 1 live: 1 of 4 so far
    store.set_problem_stats(cid, 1, stats)  # the metrics stage ends
    store.update_round(cid, 1, stage="done", metrics=final)
    store.heartbeat(cid, {"stage": "metrics", "round": 1})
    data = loader.load(store, time.time())
    neg = next(r for r in data.grid if r.task_id == "toy/neg")
    assert neg.cells[1][:2] == (4, 1) and neg.live is None


def test_launch_preview_names_the_budget_options():
    from engine.config import parse_config
    from sdtui.screens.launch import key_settings

    base = 'name = "x"\n'
    assert "budget" not in dict(key_settings(parse_config(base)))
    cfg = parse_config(base + "[budget]\nadaptive = true\n[hint]\nenabled = true\nsamples = 8\nshow_attempt = false\n")
    assert dict(key_settings(cfg))["budget"] == ("n x train problems train samples a round; adaptive 2-32 per problem; "
                                                 "8 hinted (failing test)")
