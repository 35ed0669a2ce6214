"""The README says what is true: its commands print what it shows, its Python blocks run as
written, and its prose sits outside code fences (issue 16, items 9 and 14)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n{title}\n")
    level = title.split(" ", 1)[0]
    following = re.search(rf"\n#{{1,{len(level)}}} ", README[start + len(title) + 2 :])
    end = start + len(title) + 2 + following.start() if following else len(README)
    return README[start:end]


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _env() -> dict[str, str]:
    src = str(ROOT / "src")
    env = {**os.environ, "NO_COLOR": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env


def test_the_workload_command_prints_what_the_readme_shows() -> None:
    section = _section("### A whole workload")
    [command] = _blocks(section, "bash")
    shown = _blocks(section, "text")[0]
    argv = shlex.split(command.strip())
    assert argv[:2] == ["llamaroute", "estimate"]
    done = subprocess.run([sys.executable, "-m", "llamaroute", *argv[1:]], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=_env(), check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown
