"""The generated blocks of README.md (findings, CLI reference) and research/README.md (the lab's
tables) match the code and the shipped tables, and the check catches a stale one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = {
    "README.md": ("findings", "cli"),
    "research/README.md": ("attempts", "lesion-users", "probe", "scorecard", "results-table"),
}
"""Every generated block, by the file it lives in."""


def check(root: Path = ROOT) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "scripts.update_readme", "--check", "--root", str(root)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def test_generated_blocks_are_fresh() -> None:
    proc = check()
    assert proc.returncode == 0, proc.stderr


def test_the_check_fails_on_a_stale_block_in_either_file(tmp_path: Path) -> None:
    for file, names in BLOCKS.items():
        text = (ROOT / file).read_text()
        for name in names:
            start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
            assert text.count(start) == 1 and text.count(end) == 1, f"{file} lacks its {name} block"
            text = re.sub(
                re.escape(start) + ".*?" + re.escape(end), f"{start}\nstale\n{end}", text, flags=re.S
            )
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text(text)
    proc = check(tmp_path)
    assert proc.returncode == 1
    for said in (
        "findings, cli block",
        "attempts, lesion-users, probe block",
        "scorecard block",
        "results table",
    ):
        assert said in proc.stderr, proc.stderr


def test_readme_gives_the_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make app" in readme and "make test" in readme
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"
