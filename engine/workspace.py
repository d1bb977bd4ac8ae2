"""The workspace: one folder holding the database, engine logs, LoRA checkpoints and exports."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs


@dataclass(frozen=True)
class Workspace:
    home: Path

    @classmethod
    def resolve(cls, home: str | Path | None = None) -> "Workspace":
        """`--home DIR`, else $SDTUI_HOME, else the per-user data dir (e.g. ~/.local/share/sdtui)."""
        chosen = home or os.environ.get("SDTUI_HOME") or platformdirs.user_data_dir("sdtui")
        return cls(Path(chosen).expanduser().resolve())

    @property
    def db_path(self) -> Path:
        return self.home / "sdtui.db"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def log_file(self, cid: int) -> Path:
        return self.logs / f"campaign-{cid}.log"

    def checkpoint(self, cid: int, rnd: int) -> Path:
        """The LoRA adapter trained in round `rnd` (round 0 is the base model: no adapter)."""
        return self.home / "checkpoints" / str(cid) / str(rnd)

    def tracker_dir(self, cid: int) -> Path:
        return self.home / "trackers" / str(cid)

    @property
    def exports(self) -> Path:
        return self.home / "exports"
