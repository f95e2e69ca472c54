"""qk.onnx: ONNX models in (`load`) and out (`export`, quantized layers as QDQ).

`qk.onnx.load(path)` returns a `qk.graph.GraphModule`; the `onnx` package is
the parser (`pip install 'qk[onnx]'`), ONNX Runtime is never needed.
"""

from .export import export, to_onnx
from .importer import load, to_graph
from .inspect import inspect

__all__ = ["export", "inspect", "load", "to_graph", "to_onnx"]
