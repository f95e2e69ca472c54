"""Every public function and class of qk has a docstring."""

from __future__ import annotations

import inspect

import pytest

import qk
import qk.graph
import qk.nn
import qk.ptq
import qk.qat
import qk.quant

MODULES = [qk, qk.nn, qk.ptq, qk.qat, qk.quant, qk.graph]


def _public(module):
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name)
        if inspect.ismodule(obj) or not (inspect.isfunction(obj) or inspect.isclass(obj) or callable(obj)):
            continue
        if isinstance(obj, type) and issubclass(obj, BaseException):
            continue
        yield f"{module.__name__}.{name}", obj


def test_public_names_have_docstrings():
    onnx = pytest.importorskip("qk.onnx")
    missing = [name for m in MODULES + [onnx] for name, obj in _public(m) if not (inspect.getdoc(obj) or "").strip()]
    assert not missing, f"no docstring: {missing}"
