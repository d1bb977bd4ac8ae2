"""The built wheel (what `pip install sdtui` gets, not the editable checkout) carries its themes and
styles and finds them: themes/ lives at the top level of the repository, outside the packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_and_finds_its_themes(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("sdtui-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("sdtui/bundled_themes/")}
    assert shipped == {p.name for p in (ROOT / "themes").glob("*.toml")}
    assert "sdtui/sdtui.tcss" in names and "engine/backends/hf.py" in names

    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = "import sdtui.themes as t; print(sorted(t.load_themes()), t.__file__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}).stdout
    assert out.startswith("['sdtui-ansi', 'sdtui-dark', 'sdtui-ember', 'sdtui-light']") and str(tmp_path / "site") in out
