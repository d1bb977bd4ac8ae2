"""TUI costs on a big workspace: 200 problems x 3 rounds x 100 samples (60,000 samples).

    python bench/tui.py [--home DIR] [--repeat 20]

Seeds the workspace through the Store API (once; reused when DIR already holds it), then measures:

- dashboard refresh: what one poll costs when everything changed (campaign row, rounds, the
  200 x 3 pass-count grid, events: `DashboardLoader.load` from cold), what an idle poll costs
  (nothing changed), the live pass-count query of a round being verified, and the UI side: applying
  a full update to the dashboard's widgets and rendering it (headless app, 160x48 or --size);
- sample browser: opening one problem (the list query for its 300 samples, then the first sample
  with its prompt), from the store and in the headless app (screen pushed -> sample shown);
- memory: the peak RSS of a process running the TUI headless through campaigns list, dashboard and
  sample browser (measured in a child process so the seeding does not count).

Targets (issue 4): refresh <= 50 ms, open a problem <= 100 ms, memory < 200 MB. Medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "tui"))  # tui_seed: the seeded workspaces of the TUI tests


def ms(seconds: list[float]) -> str:
    return f"{1000 * statistics.median(seconds):6.1f} ms (min {1000 * min(seconds):.1f}, max {1000 * max(seconds):.1f})"


def ensure_workspace(home: Path) -> int:
    from engine.store import Store

    db = home / "sdtui.db"
    if db.exists():
        store = Store(db)
        try:
            found = [c["id"] for c in store.campaigns() if c["name"] == "bench-200x3x100"]
            if found and sum(store.count_samples(found[0]).values()) == 60_000:
                return found[0]
        finally:
            store.close()
        raise SystemExit(f"{db} exists but is not the benchmark's workspace: give another --home")
    from tui_seed import seed_big

    t0 = time.perf_counter()
    cid = seed_big(home)
    print(f"seeded {db} in {time.perf_counter() - t0:.1f} s ({db.stat().st_size / 1e6:.0f} MB)")
    return cid


def bench_store(home: Path, cid: int, repeat: int) -> dict:
    from engine.store import Store
    from sdtui.data import DashboardLoader, SampleFilter, load_sample_list
    from tui_seed import NOW

    store = Store(home / "sdtui.db")
    full, idle, live, open_problem = [], [], [], []
    for _ in range(repeat):
        loader = DashboardLoader(cid)
        t0 = time.perf_counter()
        data = loader.load(store, NOW)
        full.append(time.perf_counter() - t0)
        assert data is not None and len(data.grid) == 200
        t0 = time.perf_counter()
        assert loader.load(store, NOW) is None
        idle.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.pass_counts(cid, 2)
        live.append(time.perf_counter() - t0)
    tasks = [p.task_id for p, _ in store.problems(cid)]
    prompts = {p.task_id: p.prompt for p, _ in store.problems(cid)}
    for i in range(repeat):
        t0 = time.perf_counter()
        rows = load_sample_list(store, cid, SampleFilter(task_id=tasks[(i * 37) % len(tasks)]))
        first = store.sample(rows[0]["id"])
        assert prompts[first["task_id"]] + first["completion"]  # the program the browser shows
        open_problem.append(time.perf_counter() - t0)
        assert len(rows) == 300
    store.close()
    return {"refresh_full": full, "refresh_idle": idle, "live_counts": live, "open_problem": open_problem}


def bench_ui(home: Path, cid: int, repeat: int, size: tuple[int, int] = (160, 48)) -> dict:
    """In this process: a headless app; returns UI timings and the peak RSS."""
    from sdtui.app import make_app
    from sdtui.data import DashboardData, DashboardLoader
    from sdtui.messages import DashboardUpdated
    from sdtui.screens.campaigns import CampaignsScreen
    from sdtui.screens.dashboard import DashboardScreen
    from sdtui.screens.samples import SamplesScreen
    from engine.store import Store
    from tui_seed import NOW

    out: dict = {k: [] for k in ("apply", "apply_cpu", "progress", "progress_cpu", "open_ui", "open_cpu",
                                 "open_painted", "switch_ui", "switch_cpu", "switch_painted")}

    async def wait(pilot, predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError
            await pilot.pause(0.005)

    async def run() -> None:
        app = make_app(home, theme="sdtui-dark", now=lambda: NOW)
        # When each frame of the sample browser was composed and handed to the driver, with the
        # problem it showed: "painted" = the first frame that shows the new problem (pilot's own
        # waits, which sleep 20 ms at least, are not part of it).
        frames: list[tuple[float, str]] = []
        display = app._display

        def timed_display(screen, renderable) -> None:
            display(screen, renderable)
            if renderable is not None and isinstance(screen, SamplesScreen) and screen.current is not None:
                frames.append((time.perf_counter(), screen.current["task_id"]))

        app._display = timed_display

        def painted(t0: float, task: str) -> float:
            return min(t for t, shown in frames if t >= t0 and shown == task) - t0

        async with app.run_test(size=size) as pilot:
            await wait(pilot, lambda: isinstance(app.screen, CampaignsScreen) and app.screen.loaded)
            t0 = time.perf_counter()
            app.push_screen(DashboardScreen(cid))
            await wait(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.loaded)
            await pilot.pause()
            out["dashboard_first_show"] = time.perf_counter() - t0
            dash = app.screen
            store = Store(home / "sdtui.db")
            for _ in range(repeat):
                data = DashboardLoader(cid).load(store, NOW)
                data.events = []  # the log is append-only: do not grow it with copies
                t0, c0 = time.perf_counter(), time.process_time()
                dash.on_dashboard_updated(DashboardUpdated(data))
                await pilot.pause()  # processes the refresh: layout and render of what changed
                out["apply"].append(time.perf_counter() - t0)
                out["apply_cpu"].append(time.process_time() - c0)
            store.close()
            # a typical poll while an engine runs: the progress row changed, nothing else
            base = dict(dash.campaign)
            for i in range(repeat):
                campaign = {**base, "progress": {"stage": "verify", "round": 2, "done": i, "total": 20000,
                                                 "unit": "samples", "samples_per_s": 9.5, "eta_s": 100.0 + i}}
                data = DashboardData(campaign=campaign, status="running", info=dash.loader.info)
                t0, c0 = time.perf_counter(), time.process_time()
                dash.on_dashboard_updated(DashboardUpdated(data))
                await pilot.pause()
                out["progress"].append(time.perf_counter() - t0)
                out["progress_cpu"].append(time.process_time() - c0)
            tasks = [r.task_id for r in dash.query_one("PassGrid").shown]

            def browser_shows(task):
                s = app.screen
                return isinstance(s, SamplesScreen) and s.current is not None and s.current["task_id"] == task \
                    and len(s.rows) == 300

            t0, c0 = time.perf_counter(), time.process_time()
            app.open_samples(cid, task_id=tasks[0])  # the first time: a new screen is composed
            await wait(pilot, lambda: browser_shows(tasks[0]))
            await pilot.pause()
            out["first_open"], out["first_open_cpu"] = time.perf_counter() - t0, time.process_time() - c0
            for i in range(repeat):
                app.pop_screen()  # back on the dashboard: Enter on another problem
                await pilot.pause()
                task = tasks[(i * 37 + 1) % len(tasks)]
                t0, c0 = time.perf_counter(), time.process_time()
                app.open_samples(cid, task_id=task)
                await wait(pilot, lambda: browser_shows(task))
                await pilot.pause()
                out["open_ui"].append(time.perf_counter() - t0)
                out["open_cpu"].append(time.process_time() - c0)
                out["open_painted"].append(painted(t0, task))
            screen = app.screen  # the browser already open: switch it to another problem
            for i in range(repeat):
                task = tasks[(i * 37 + 2) % len(tasks)]
                await pilot.pause()
                t0, c0 = time.perf_counter(), time.process_time()
                screen._set_filter(task_id=task)
                await wait(pilot, lambda: browser_shows(task))
                await pilot.pause()
                out["switch_ui"].append(time.perf_counter() - t0)
                out["switch_cpu"].append(time.process_time() - c0)
                out["switch_painted"].append(painted(t0, task))
        with open("/proc/self/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        out["peak_rss_mb"] = int(status["VmHWM"].split()[0]) / 1024
        out["rss_mb"] = int(status["VmRSS"].split()[0]) / 1024

    asyncio.run(run())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=Path("/tmp/sdtui-bench-tui"))
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--size", default="160x48", help="terminal size of the headless TUI (WIDTHxHEIGHT)")
    ap.add_argument("--ui-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("TZ", "UTC")

    if args.ui_child:
        w, h = (int(x) for x in args.size.lower().split("x"))
        print(json.dumps(bench_ui(args.home, int(os.environ["BENCH_CID"]), args.repeat, (w, h))))
        return

    cid = ensure_workspace(args.home)
    s = bench_store(args.home, cid, args.repeat)
    child = subprocess.run([sys.executable, __file__, "--home", str(args.home), "--repeat", str(args.repeat),
                            "--size", args.size, "--ui-child"], env={**os.environ, "BENCH_CID": str(cid)}, capture_output=True,
                           text=True, check=True)
    ui = json.loads(child.stdout.strip().splitlines()[-1])

    print(f"workspace: {args.home} (campaign {cid}: 200 problems x 3 rounds x 100 samples = 60,000 samples); "
          f"UI at {args.size}")
    print("dashboard refresh (target <= 50 ms)")
    print(f"  store, everything changed (cold loader)  {ms(s['refresh_full'])}")
    print(f"  store, nothing changed (idle poll)       {ms(s['refresh_idle'])}")
    print(f"  store, live pass counts of a round       {ms(s['live_counts'])}")
    print(f"  UI, progress changed (a poll mid-stage)  {ms(ui['progress'])}")
    print(f"      (CPU time of the TUI process)        {ms(ui['progress_cpu'])}")
    print(f"  UI, everything changed (a round ended)   {ms(ui['apply'])}")
    print(f"      (CPU time of the TUI process)        {ms(ui['apply_cpu'])}")
    print(f"  first show of the dashboard (UI, cold)   {1000 * ui['dashboard_first_show']:6.1f} ms")
    print("sample browser, open one problem (target <= 100 ms)")
    print(f"  store: 300-sample list + first sample    {ms(s['open_problem'])}")
    print(f"  UI: Enter on a problem -> frame painted  {ms(ui['open_painted'])}")
    print(f"  UI: ... -> pilot sees it and idles       {ms(ui['open_ui'])}")
    print(f"      (CPU time of the TUI process)        {ms(ui['open_cpu'])}")
    print(f"  UI: browser open, switch: frame painted  {ms(ui['switch_painted'])}")
    print(f"  UI: ... -> pilot sees it and idles       {ms(ui['switch_ui'])}")
    print(f"      (CPU time of the TUI process)        {ms(ui['switch_cpu'])}")
    print(f"  UI: first open (the screen is built)     {1000 * ui['first_open']:6.1f} ms "
          f"(CPU {1000 * ui['first_open_cpu']:.1f} ms)")
    print("memory (target < 200 MB)")
    print(f"  TUI process peak RSS                     {ui['peak_rss_mb']:6.1f} MB (now {ui['rss_mb']:.1f} MB)")


if __name__ == "__main__":
    main()
