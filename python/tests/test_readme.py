"""The README's Python quickstart runs as written (every ```python block; ```py blocks are
illustrations that need network services and are not run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_a_python_quickstart() -> None:
    assert python_blocks(), "README.md lost its ```python quickstart"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(python_blocks()[index], f"README.md python block {index}", "exec"), {})
    printed = capsys.readouterr().out
    assert "swd_" not in printed, "the quickstart must not print a token"
