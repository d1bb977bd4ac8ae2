"""Reading JSON-lines files (problems, sample files, replay files) with one-line errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

from engine.errors import UserError


def read_jsonl(path: Path, what: str = "file") -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; `.gz` files are read compressed.

    A missing file, a line that is not JSON, or a line that is not an object raises UserError
    naming the file and the line. `what` names the file in messages ("problem file", ...).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}; give an existing path")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path} line {i}: not valid JSON ({e.msg}); fix or remove that line") from None
            if not isinstance(row, dict):
                raise UserError(f"{path} line {i}: expected a JSON object; fix or remove that line")
            yield i, row
