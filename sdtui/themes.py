"""Themes (TOML files in the top-level `themes/` folder) and the small per-workspace TUI settings file.

A theme file holds the fields of `textual.theme.Theme` (name, primary, ..., dark, ansi) and an
optional `[variables]` table. The chosen theme is remembered in `<workspace>/tui.json`.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import fields
from pathlib import Path

from textual.theme import Theme

DEFAULT_THEME = "sdtui-dark"
ANSI_THEME = "sdtui-ansi"  # the default on 16-colour terminals
SETTINGS_FILE = "tui.json"

_THEME_FIELDS = {f.name for f in fields(Theme)}


def themes_dirs() -> list[Path]:
    """Where theme files are looked for: $SDTUI_THEMES, then the repository's (or install's) `themes/`."""
    dirs = []
    if os.environ.get("SDTUI_THEMES"):
        dirs.append(Path(os.environ["SDTUI_THEMES"]))
    here = Path(__file__).resolve().parent
    dirs += [here.parent / "themes", here / "bundled_themes"]  # the repository's, then the copy in a wheel
    return [d for d in dirs if d.is_dir()]


def theme_from_toml(path: Path) -> Theme:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = set(data) - _THEME_FIELDS
    if unknown:
        raise ValueError(f"{path}: unknown theme keys {sorted(unknown)}")
    data.setdefault("name", path.stem)
    return Theme(**data)


def load_themes(dirs: list[Path] | None = None) -> dict[str, Theme]:
    """Every theme file found, by name (earlier folders win). A broken file is skipped, not fatal."""
    found: dict[str, Theme] = {}
    for d in dirs if dirs is not None else themes_dirs():
        for path in sorted(d.glob("*.toml")):
            try:
                theme = theme_from_toml(path)
            except (ValueError, TypeError, tomllib.TOMLDecodeError):
                continue
            found.setdefault(theme.name, theme)
    return found


def read_settings(home: Path) -> dict:
    try:
        data = json.loads((home / SETTINGS_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_settings(home: Path, **changes) -> None:
    """Merge `changes` into the settings file (best effort: a read-only workspace is not an error)."""
    data = read_settings(home) | changes
    try:
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / (SETTINGS_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(home / SETTINGS_FILE)
    except OSError:
        pass
