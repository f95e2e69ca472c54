"""qk.onnx: ONNX models in (and, with quantization, out).

`qk.onnx.load(path)` returns a `qk.graph.GraphModule`; the `onnx` package is
the parser (`pip install 'qk[onnx]'`), ONNX Runtime is never needed.
"""

from .importer import load, to_graph
from .inspect import inspect

__all__ = ["inspect", "load", "to_graph"]
