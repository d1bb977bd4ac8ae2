"""Model text as code: syntax-highlighted, never parsed as markup, control characters made visible."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from rich.console import Group
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text

from sdtui.fmt import safe, theme_styles

if TYPE_CHECKING:
    from textual.app import App

SAMPLE_STATUS_STYLE = {"passed": "success", "failed": "error", "timed out": "warning", "error": "error",
                       "pending": "muted"}


def syntax_theme(app: "App") -> tuple[str, str | None]:
    """(pygments/rich syntax theme, background colour) that suit the app theme."""
    theme = app.current_theme
    if getattr(theme, "ansi", False):
        return ("ansi_dark" if theme.dark else "ansi_light"), "default"
    bg = app.theme_variables.get("surface")
    return ("monokai" if theme.dark else "friendly"), bg


def program(prompt: str, completion: str) -> str:
    return safe(prompt) + safe(completion)


def code_view(app: "App", prompt: str, completion: str, wrap: bool = True) -> Syntax:
    """prompt + completion as Python; the prompt part dimmed so the model's part stands out."""
    theme, bg = syntax_theme(app)
    p = safe(prompt)
    syntax = Syntax(p + safe(completion), "python", theme=theme, background_color=bg, line_numbers=True,
                    word_wrap=wrap, indent_guides=False)
    if p:
        lines = p.split("\n")
        syntax.stylize_range(Style(dim=True, italic=True), (1, 0), (len(lines), len(lines[-1])))
    return syntax


def diff_view(app: "App", a: dict, b: dict, prompt: str) -> Syntax | Text:
    left = program(prompt, a.get("completion", "")).splitlines()
    right = program(prompt, b.get("completion", "")).splitlines()
    lines = list(difflib.unified_diff(left, right, f"#{a['id']} ({a['status']})", f"#{b['id']} ({b['status']})",
                                      lineterm="", n=3))
    if not lines:
        return Text("The two programs are identical.", style=theme_styles(app)["muted"])
    theme, bg = syntax_theme(app)
    return Syntax("\n".join(lines), "diff", theme=theme, background_color=bg, word_wrap=True)


def sample_header(app: "App", s: dict, marked: int | None = None) -> Text:
    st = theme_styles(app)
    t = Text()
    t.append(f"#{s['id']}", st["bold"])
    t.append(f"  r{s['round']}  ")
    t.append(safe(s["task_id"]), st["bold"])
    t.append(f"  sample {s['idx']}  {s['purpose']}  ")
    status = s.get("status", "?")
    t.append(f"● {status}", st[SAMPLE_STATUS_STYLE.get(status, "muted")] + st["bold"])
    if s.get("duration") is not None:
        t.append(f"  {s['duration']:.2f}s", st["muted"])
    if s.get("n_tokens") is not None:
        t.append(f"  {s['n_tokens']} tok", st["muted"])
    if marked is not None and marked != s["id"]:
        t.append(f"  (marked #{marked} for compare)", st["accent"])
    elif marked == s["id"]:
        t.append("  (marked)", st["accent"])
    return t


def verdict(app: "App", s: dict) -> Text | None:
    """The verifier's result: the failing assertion / error line, and stderr/stdout tails."""
    st = theme_styles(app)
    status = s.get("status")
    out = Text()
    if s.get("detail"):
        out.append(safe(s["detail"]).rstrip() + "\n", st[SAMPLE_STATUS_STYLE.get(status, "muted")])
    elif status == "passed":
        out.append("all tests passed\n", st["success"])
    elif status == "pending":
        out.append("not verified yet\n", st["muted"])
    if s.get("asserts_total"):
        passed, total = s.get("asserts_passed") or 0, s["asserts_total"]
        out.append(f"asserts passed: {passed}/{total}" + ("" if passed == total else " before the first failure") + "\n",
                   st["muted"])
    for kind, n, reason in s.get("allocation") or ():
        what = "samples" if kind == "sample" else "hinted re-samples"
        out.append(f"this round's budget for the problem: {n} {what} ({safe(reason)})\n", st["muted"])
    if s.get("hint"):
        out.append("hinted re-sample: its prompt carried this hint; training uses the prompt without it\n",
                   st["accent"] + st["bold"])
        out.append(safe(s["hint"]).rstrip() + "\n", st["accent"])
    for name in ("stderr", "stdout"):
        text = safe(s.get(name) or "").rstrip()
        if text:
            tail = text.splitlines()[-20:]
            out.append(f"{name} (last {len(tail)} lines):\n", st["bold"])
            out.append("\n".join(tail) + "\n", st["muted"])
    return out if out else None


def sample_view(app: "App", s: dict, prompt: str, raw: bool = False, marked: int | None = None) -> Group:
    parts: list = [sample_header(app, s, marked)]
    v = verdict(app, s)
    if v is not None:
        parts.append(v)
    if raw:
        parts.append(Text("model output (as generated):", style=theme_styles(app)["bold"]))
        parts.append(Text(safe(s.get("output", ""))))
    else:
        parts.append(code_view(app, prompt, s.get("completion", "")))
    return Group(*parts)

