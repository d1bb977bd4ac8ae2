"""Screens that read the store: one worker thread per screen owns one `Store` connection.

The thread polls (`poll`, at most every `app.poll_interval` seconds, only while the screen is the
current one) and runs one-off requests (`request(fn)`: a filter change, a command row to enqueue).
Everything it produces reaches the UI as a message; the UI thread never touches SQLite.
"""

from __future__ import annotations

import queue
import subprocess
import time
from typing import TYPE_CHECKING, Any, Callable

from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from engine.store import Store

from sdtui.data import allowed_verbs
from sdtui.messages import CliFinished, CommandSent, StoreFailed

if TYPE_CHECKING:
    from sdtui.app import SdtuiApp

_WAKE = object()

VERB_LABELS = {
    "pause": "pause",
    "resume": "resume",
    "stop": "stop now",
    "stop_after_round": "stop after this round",
}
CONFIRM = {
    "stop": "Stop campaign #{cid} ({name}) now? The engine stops within seconds (a unit being sampled is "
    "sampled again on resume); its state is kept and `resume` continues it later.",
    "stop_after_round": "Stop campaign #{cid} ({name}) when the current round ends?",
}


class StoreScreen(Screen):
    """A screen with a store worker thread; subclasses override `poll` (or leave it None)."""

    POLLS = True
    loaded = False  # set once the first poll's data is on screen (tests wait on it)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._active = True

    @property
    def sdtui(self) -> "SdtuiApp":
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        self._store_loop(self.sdtui.db_path, self.sdtui.now, self.sdtui.poll_interval)

    def on_screen_suspend(self) -> None:
        self._active = False

    def on_screen_resume(self) -> None:
        self._active = True
        self.wake()

    # -- called from the UI thread
    def request(self, fn: Callable[[Store], Message | None]) -> None:
        """Run `fn(store)` in this screen's store thread; a message it returns is posted here."""
        self._requests.put(fn)

    def wake(self) -> None:
        """Poll now instead of at the next tick."""
        self._requests.put(_WAKE)

    # -- called in the store thread
    def poll(self, store: Store, now: float) -> Message | None:
        return None

    @work(thread=True, exclusive=True, group="store", exit_on_error=False)
    def _store_loop(self, db_path, now: Callable[[], float], interval: float) -> None:
        worker = get_current_worker()
        try:
            store = Store(db_path)
        except Exception as e:  # unreadable database: say so instead of crashing the TUI
            self.post_message(StoreFailed(f"cannot open {db_path}: {e}"))
            return
        next_poll = 0.0
        try:
            while not worker.is_cancelled:
                wait = 0.1
                if self.POLLS and self._active:
                    wait = min(wait, max(0.001, next_poll - time.monotonic()))
                try:
                    item = self._requests.get(timeout=wait)
                except queue.Empty:
                    item = None
                if worker.is_cancelled:
                    break
                try:
                    if item is _WAKE:
                        next_poll = 0.0
                    elif item is not None:
                        msg = item(store)
                        if msg is not None:
                            self.post_message(msg)
                    elif self.POLLS and self._active and time.monotonic() >= next_poll:
                        next_poll = time.monotonic() + interval
                        msg = self.poll(store, now())
                        if msg is not None:
                            self.post_message(msg)
                except Exception as e:  # a locked or half-migrated database: report, back off, go on
                    self.post_message(StoreFailed(f"{type(e).__name__}: {e}"))
                    next_poll = time.monotonic() + max(2.0, interval)
        finally:
            store.close()

    def on_store_failed(self, message: StoreFailed) -> None:
        self.notify(message.error, title="database", severity="error", timeout=6)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:  # a bug, not a database problem: say so rather than freeze
            self.notify(f"{type(event.worker.error).__name__}: {event.worker.error}", title="sdtui internal error",
                        severity="error", timeout=10)


class CliMixin:
    """Runs the `sdtui` CLI as a subprocess in a worker thread; the result arrives as `CliFinished`."""

    def run_cli(self, args: list[str], action: str) -> None:
        self._cli_worker(self.app.cli_argv + args, action)  # type: ignore[attr-defined]

    @work(thread=True, group="cli", exit_on_error=False)
    def _cli_worker(self, argv: list[str], action: str) -> None:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
            msg = CliFinished(action, p.returncode, p.stdout, p.stderr)
        except (OSError, subprocess.TimeoutExpired) as e:
            msg = CliFinished(action, -1, "", str(e))
        self.post_message(msg)  # type: ignore[attr-defined]


# The keys of every screen that controls a campaign (campaign list, dashboard).
CONTROL_BINDINGS = [
    Binding("b", "browse", "Samples"),
    Binding("p", "control('pause')", "Pause"),
    Binding("r", "control('resume')", "Resume"),
    Binding("x", "control('stop')", "Stop"),
    Binding("a", "control('stop_after_round')", "Stop after round"),
]


class ControlMixin(CliMixin):
    """Pause / resume / stop / stop-after-round for a campaign, with confirmation where destructive.

    The host screen provides `control_target() -> (cid, name, status) | None`.
    """

    def control_target(self) -> tuple[int, str, str] | None:  # pragma: no cover - overridden
        return None

    def action_control(self, verb: str) -> None:
        target = self.control_target()
        if target is None:
            self.notify("No campaign selected", severity="warning")  # type: ignore[attr-defined]
            return
        cid, name, status = target
        if verb not in allowed_verbs(status):
            self.notify(  # type: ignore[attr-defined]
                f"Campaign #{cid} is {status}: cannot {VERB_LABELS[verb]}", severity="warning"
            )
            return
        if verb in CONFIRM:
            from sdtui.screens.confirm import ConfirmScreen

            def confirmed(ok: bool | None) -> None:
                if ok:
                    self.send_command(cid, verb)

            self.app.push_screen(  # type: ignore[attr-defined]
                ConfirmScreen(CONFIRM[verb].format(cid=cid, name=name), yes=VERB_LABELS[verb].capitalize()), confirmed
            )
            return
        if verb == "resume" and status != "paused":
            # No live engine to read a command row: restart it through the CLI.
            self.notify(f"Restarting the engine of campaign #{cid}…")  # type: ignore[attr-defined]
            self.run_cli(["resume", str(cid)], action=f"resume:{cid}")
            return
        self.send_command(cid, verb)

    def send_command(self, cid: int, verb: str) -> None:
        def enqueue(store: Store) -> CommandSent:
            try:
                return CommandSent(cid, verb, store.enqueue(cid, verb))
            except Exception as e:
                return CommandSent(cid, verb, None, error=str(e))

        self.request(enqueue)  # type: ignore[attr-defined]

    def on_command_sent(self, message: CommandSent) -> None:
        if message.error:
            self.notify(f"{message.verb} failed: {message.error}", severity="error")  # type: ignore[attr-defined]
        else:
            self.notify(  # type: ignore[attr-defined]
                f"Sent '{VERB_LABELS[message.verb]}' to campaign #{message.cid}; the engine acts within seconds "
                "(after the current step while training)"
            )
        self.wake()  # type: ignore[attr-defined]

    def on_cli_finished(self, message: CliFinished) -> None:
        if not message.action.startswith("resume:"):
            return
        cid = message.action.split(":", 1)[1]
        if message.returncode == 0:
            self.notify(f"Engine of campaign #{cid} restarted")  # type: ignore[attr-defined]
        else:
            self.notify(cli_error(message), title=f"resume #{cid} failed", severity="error", timeout=10)  # type: ignore[attr-defined]
        self.wake()  # type: ignore[attr-defined]


def cli_error(message: CliFinished) -> str:
    """The CLI's one-line error (the last non-empty stderr line), else a generic one."""
    lines = [ln for ln in (message.stderr or "").splitlines() if ln.strip()]
    if lines:
        return lines[-1].strip()
    return f"exit status {message.returncode}"
