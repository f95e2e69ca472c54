"""Every Python snippet of the README runs, in order, in one namespace (so the
README cannot rot); files it writes go to a temporary folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_snippets():
    assert len(snippets()) >= 4


def test_readme_snippets_run(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnx")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for i, code in enumerate(snippets()):
        try:
            exec(compile(code, f"README.md snippet {i + 1}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 (report which snippet broke)
            pytest.fail(f"README snippet {i + 1} failed: {type(e).__name__}: {e}\n{code}")
