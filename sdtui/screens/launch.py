"""Launch a campaign: pick a TOML (from campaigns/ or a path), see its key settings, override the
common ones, and start its engine detached through the CLI (`sdtui start CONFIG --set KEY=VALUE`).

The TUI never creates campaign state itself: the CLI does, and prints the new campaign id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Header, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from sdtui.fmt import one_line, safe, theme_styles
from sdtui.messages import CliFinished, _DataMessage
from sdtui.screens.base import CliMixin, cli_error
from sdtui.widgets.keybar import KeyBar

# (input id, dotted key, label, type)
OVERRIDES = [
    ("o-model", "model.spec", "model", str),
    ("o-rounds", "rounds", "rounds", int),
    ("o-n", "sampling.n", "samples per problem", int),
    ("o-temperature", "sampling.temperature", "temperature", float),
]


@dataclass
class Preview(_DataMessage):
    path: str
    settings: list[tuple[str, str]] | None
    error: str | None
    token: int
    defaults: dict[str, str] | None = None  # the file's own values of the overridable keys


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def display_path(p: Path) -> str:
    """Relative to the working directory when inside it (shorter, and the same on every machine)."""
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def campaign_files(dirs: list[Path]) -> list[Path]:
    seen, out = set(), []
    for d in dirs:
        for p in sorted(d.glob("*.toml")) if d.is_dir() else []:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(p)
    return out


def key_settings(cfg) -> list[tuple[str, str]]:
    p, s, t, f, c = cfg.problems, cfg.sampling, cfg.train, cfg.filter, cfg.collapse
    problems = p.source + (f", first {p.limit}" if p.limit else "") + (f" ({p.order})" if p.order != "file" else "")
    return [
        ("name", cfg.name),
        ("model", f"{cfg.model.spec} ({cfg.model.backend}, {cfg.model.prompt_style} prompts)"),
        ("problems", f"{problems}; held-out {len(p.heldout_ids) or f'{p.heldout_fraction:g}'}"),
        ("rounds", f"{cfg.rounds} after the round-0 baseline"),
        ("sampling", f"n={s.n} T={s.temperature:g} top_p={s.top_p:g} max_new_tokens={s.max_new_tokens}"),
        ("eval", f"n={cfg.eval_n} T={cfg.eval_temperature:g} pass@k k={list(cfg.eval.k)}"),
        ("filter", f"verified={f.verified} dedupe={f.dedupe} max/problem={f.max_per_problem} accumulate={f.accumulate}"),
        ("train", f"init={t.init} epochs={t.epochs:g} lr={t.learning_rate:g} LoRA r={t.lora_r}"),
        ("collapse", f"warn<{c.warn_fraction:g} stop<{c.stop_fraction:g} on collapse: {c.on_collapse}"),
    ] + _budget_setting(cfg)


def _budget_setting(cfg) -> list[tuple[str, str]]:
    """The sample budget's row, when the file sets one (issue 8's options)."""
    b, h = cfg.budget, cfg.hint
    if not (b.train_samples or b.adaptive or h.enabled):
        return []
    parts = [f"{b.train_samples or 'n x train problems'} train samples a round"]
    if b.adaptive:
        parts.append(f"adaptive {b.min_per_problem}-{b.max_per_problem or 4 * cfg.sampling.n} per problem")
    if h.enabled:
        parts.append(f"{h.samples} hinted ({'failing test + attempt' if h.show_attempt else 'failing test'})")
    return [("budget", "; ".join(parts))]


class LaunchScreen(CliMixin, Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Cancel"),
        Binding("ctrl+s", "start", "Start"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.path: str = ""
        self.error: str | None = None
        self.settings: list[tuple[str, str]] | None = None
        self.starting = False
        self._token = 0
        self._timer: Timer | None = None
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="launch"):
            with Vertical(id="launch-files"):
                yield Label("Campaign files", classes="section")
                yield OptionList(id="launch-list")
                yield Input(placeholder="or type a path to a .toml", compact=True, id="launch-path")
            with VerticalScroll(id="launch-form"):
                yield Static(id="launch-settings")
                yield Label("Overrides (empty = as in the file)", classes="section")
                with Grid(id="launch-overrides"):
                    for input_id, _key, label, typ in OVERRIDES:
                        yield Label(label)
                        yield Input(compact=True, id=input_id, type="text" if typ is str else
                                    "integer" if typ is int else "number")
                yield Static(id="launch-error")
                yield Button("Start campaign (ctrl+s)", variant="primary", id="launch-start")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = "launch a campaign"
        files = campaign_files(self.app.campaign_dirs)  # type: ignore[attr-defined]
        options = self.query_one(OptionList)
        for p in files:
            options.add_option(Option(Text(safe(p.name)), id=display_path(p)))
        if files:
            options.highlighted = 0
            options.focus()
        else:
            self.query_one("#launch-path", Input).focus()
            self._show()

    # -- choosing a file
    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.query_one("#launch-path", Input).value = event.option.id
            self.path = event.option.id
            self.refresh_preview()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#o-model", Input).focus()

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "launch-path":
            if event.value == self.path:
                return
            self.path = event.value.strip()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.3, self.refresh_preview)

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "launch-path":
            self.refresh_preview()
            self.query_one("#o-model", Input).focus()
        else:
            self.action_start()

    def overrides(self) -> tuple[dict, str | None]:
        """Typed overrides from the inputs, or an error naming the field."""
        out = {}
        for input_id, key, label, typ in OVERRIDES:
            raw = self.query_one(f"#{input_id}", Input).value.strip()
            if not raw:
                continue
            try:
                out[key] = typ(raw)
            except ValueError:
                return {}, f"{label}: {raw!r} is not a {'whole number' if typ is int else 'number'}"
        return out, None

    def refresh_preview(self) -> None:
        self._token += 1
        overrides, error = self.overrides()
        if error:
            self.settings, self.error = self.settings, error
            self._show()
            return
        self._preview(self.path, overrides, self._token)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _preview(self, path: str, overrides: dict, token: int) -> None:
        from engine.config import load_config  # pydantic: imported only when launching
        from engine.errors import UserError

        if not path:
            self.post_message(Preview(path, None, "Pick a campaign file or type a path", token))
            return
        try:
            base, _ = load_config(Path(path).expanduser())
            defaults = {key: str(_get(base, key)) for _, key, _, _ in OVERRIDES}
            cfg, _ = load_config(Path(path).expanduser(), overrides or None) if overrides else (base, "")
            self.post_message(Preview(path, key_settings(cfg), None, token, defaults))
        except UserError as e:
            self.post_message(Preview(path, None, str(e), token))
        except Exception as e:  # a file we cannot read: say so
            self.post_message(Preview(path, None, f"{path}: {e}", token))

    def on_preview(self, message: Preview) -> None:
        if message.token != self._token:
            return
        self.settings, self.error = message.settings, message.error
        for input_id, key, _label, _typ in OVERRIDES:
            value = (message.defaults or {}).get(key)
            self.query_one(f"#{input_id}", Input).placeholder = f"{value} (from the file)" if value else ""
        self._show()
        self.loaded = True

    def _show(self) -> None:
        st = theme_styles(self.app)
        box_ = self.query_one("#launch-settings", Static)
        if self.settings:
            t = Table(box=box.SIMPLE, show_header=False, padding=(0, 1), pad_edge=False, show_edge=False,
                      title="Key settings" + (" (with overrides)" if self.overrides()[0] else ""),
                      title_justify="left", title_style=st["bold"])
            t.add_column(style=st["accent"], no_wrap=True)
            t.add_column()
            for k, v in self.settings:
                t.add_row(k, Text(safe(v)))
            box_.update(t)
        elif not self.path:
            box_.update(Text("No campaign files found in campaigns/: type a path on the left.", style=st["muted"]))
        else:
            box_.update(Text(""))
        err = self.query_one("#launch-error", Static)
        if self.starting:
            err.update(Text("Starting the engine…", style=st["accent"]))
        else:
            err.update(Text(one_line(self.error, 400), style=st["error"]) if self.error else Text(""))
        self.query_one("#launch-start", Button).disabled = bool(self.error) or self.starting or not self.settings

    # -- starting
    def start_argv(self) -> list[str]:
        overrides, _ = self.overrides()
        argv = ["start", str(Path(self.path).expanduser())]
        for key, value in overrides.items():
            literal = json.dumps(value) if isinstance(value, str) else repr(value)  # a TOML literal
            argv += ["--set", f"{key}={literal}"]
        return argv

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch-start":
            self.action_start()

    def action_start(self) -> None:
        if self.starting:
            return
        overrides, error = self.overrides()
        if error or self.error or not self.settings:
            self.error = error or self.error or "Pick a campaign file first"
            self._show()
            return
        self.starting = True
        self._show()
        self.run_cli(self.start_argv(), action="start")

    def on_cli_finished(self, message: CliFinished) -> None:
        if message.action != "start":
            return
        self.starting = False
        ids = re.findall(r"\b(\d+)\b", message.stdout or "")
        if message.returncode == 0 and ids:
            from sdtui.screens.dashboard import DashboardScreen

            cid = int(ids[-1])
            self.notify(f"Campaign #{cid} started")
            self.app.switch_screen(DashboardScreen(cid))
            return
        self.error = cli_error(message) if message.returncode != 0 else "the CLI printed no campaign id"
        self._show()
