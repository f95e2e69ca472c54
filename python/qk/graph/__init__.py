"""qk.graph: the model IR every model becomes.

- `Graph`, `Node`, `Value` (ir.py): nodes in topological order over named values;
- `OPS` (ops.py, ops_nn.py): the op registry on qk.nn tensors, so gradients flow;
- `GraphModule` (module.py): a qk.nn Module running a Graph;
- `trace` (trace.py): any qk.nn model -> Graph;
- `simplify` (simplify.py): BatchNorm folding and the fusions ONNX import applies.
"""

from .ir import Graph, Node, Value
from .module import GraphModule
from .ops import OPS, OpDef
from .simplify import simplify
from .trace import trace

__all__ = ["Graph", "GraphModule", "Node", "OPS", "OpDef", "Value", "simplify", "trace"]
