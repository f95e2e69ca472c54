"""`GraphModule`: a qk.nn Module that runs a Graph.

Float weights become `Parameter`s (so `parameters()`, `state_dict()`,
optimizers and `nn.fit` work on imported models) and every float op records
its gradient. Shape glue (Shape -> Gather -> Concat -> Reshape ...) is folded
once per input signature: the first run with a new set of input shapes and
dtypes records which values depend only on those shapes and on constants,
later runs with that signature read them from a cache and skip their nodes.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .._memory import pooled_arrays
from .._runtime import blas_on_calling_thread
from ..nn.modules import Module, Parameter
from ..nn.tensor import Tensor, no_grad
from . import ops as graph_ops
from .ir import Graph

# Inputs whose *values* decide an op's output shape: when one of them is not
# known from the input shapes alone, neither is the output's shape.
_SHAPE_INPUTS = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "ConstantOfShape": (0,), "Range": (0, 1, 2),
    "Slice": (1, 2, 3, 4), "Pad": (1, 3), "Resize": (1, 2, 3), "Upsample": (1,), "Split": (1,),
    "Squeeze": (1,), "Unsqueeze": (1,), "ReduceSum": (1,), "ReduceMean": (1,), "ReduceMax": (1,),
    "ReduceMin": (1,),
}
_SHAPE_OF = {"Shape", "Size"}
_PLAN_CACHE_SIZE = 8


_NODE_ERRORS = (ValueError, TypeError, IndexError, KeyError)


class _Plan:
    """What one input signature folds: values known before running, nodes left
    to run, and per node its op's function, attributes and value names, looked
    up once (at batch 1 the lookups were a good part of a small node's time)."""

    def __init__(self, static_values: dict, nodes: list):
        self.static_values, self.nodes = static_values, nodes
        self.steps = [(graph_ops.get(n.op_type).run, n.attrs, n.inputs, n.outputs, n) for n in nodes]

    def run(self, env: dict) -> None:
        for fn, attrs, inputs, outputs, node in self.steps:
            try:
                out = fn(attrs, *[env[i] if i else None for i in inputs])
            except _NODE_ERRORS as e:
                raise _node_error(node, e) from None
            if isinstance(out, tuple):
                for name, value in zip(outputs, out):
                    if name:
                        env[name] = value
            elif outputs and outputs[0]:
                env[outputs[0]] = out


def _node_error(node, e: Exception) -> Exception:
    return type(e)(f"node {node.name!r} ({node.op_type}): {e}")


def run_node(node, inputs: list):
    """Runs one node; errors name the node."""
    op = graph_ops.get(node.op_type)
    try:
        out = op.run(node.attrs, *inputs)
    except _NODE_ERRORS as e:
        raise _node_error(node, e) from None
    out = out if isinstance(out, tuple) else (out,)
    return out


class GraphModule(Module):
    """Runs a `Graph` on qk.nn tensors.

    `model.run({"input": array, ...})` returns {output name: ndarray} (ONNX
    Runtime's convention); `model(x)` (single input) or `model(x1, x2, ...)`
    (inputs in order) returns Tensors, so losses and `backward()` work.
    Imported Dropout is the identity and BatchNormalization uses its running
    statistics, in training mode too.
    """

    def __init__(self, graph: Graph):
        super().__init__()
        if not isinstance(graph, Graph):
            raise TypeError(f"graph: expected a qk.graph.Graph, got {type(graph).__name__}")
        object.__setattr__(self, "_graph", graph)
        object.__setattr__(self, "_plans", OrderedDict())
        trainable = set()
        for node in graph.nodes:
            for pos in graph_ops.get(node.op_type).weights:
                if pos < len(node.inputs):
                    name = node.inputs[pos]
                    if name in graph.constants and graph.constants[name].dtype.kind == "f":
                        trainable.add(name)
        for name, arr in graph.constants.items():  # graph order, so state_dict() order is stable
            if name in trainable:
                self._params[name] = Parameter(arr)

    # --- public view ------------------------------------------------------------------

    @property
    def graph(self) -> Graph:
        """The graph, with constants holding the parameters' current values."""
        for name, p in self._params.items():
            self._graph.constants[name] = p.data
        return self._graph

    @property
    def input_names(self) -> list:
        return list(self._graph.inputs)

    @property
    def output_names(self) -> list:
        return list(self._graph.outputs)

    @property
    def metadata(self) -> dict:
        return self._graph.metadata

    def extra_repr(self) -> str:
        return (f"inputs={self.input_names}, outputs={self.output_names}, {len(self._graph.nodes)} nodes, "
                f"{sum(p.size for p in self.parameters())} parameters")

    # --- running ----------------------------------------------------------------------------

    def forward(self, *args):
        names = self._graph.inputs
        if len(args) != len(names):
            raise TypeError(f"forward: the model takes {len(names)} input(s) {names}, got {len(args)} "
                            "(use run({name: array}) to pass them by name)")
        env = self.execute(dict(zip(names, args)))
        outs = [env[o] for o in self._graph.outputs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def run(self, feeds: dict, output_names=None) -> dict:
        """Runs without recording gradients; returns {name: ndarray} for the
        graph outputs (or the named values in `output_names`)."""
        if not isinstance(feeds, dict):
            raise TypeError(f"feeds: expected a dict of input name -> array, got {type(feeds).__name__}")
        wanted = list(output_names) if output_names is not None else self._graph.outputs
        unknown = [o for o in wanted if o not in self._graph.values]
        if unknown:
            raise ValueError(f"output_names: the graph has no values {unknown}")
        with no_grad():
            env = self.execute(feeds)
        return {o: np.asarray(graph_ops.data_of(env[o])) for o in wanted}

    def _feeds(self, feeds: dict) -> tuple[dict, tuple]:
        """The checked feeds (float arrays as Tensors) and their signature:
        (name, shape, dtype) per input, the key of the plan cache. A signature
        that has a plan passed these checks when the plan was made."""
        names = self._graph.inputs
        if len(feeds) != len(names) or any(n not in feeds for n in names):
            missing = [n for n in names if n not in feeds]
            extra = [n for n in feeds if n not in names]
            raise ValueError(f"feeds: the model's inputs are {names}; missing {missing}, unexpected {extra}")
        given = [(name, x, x.data if isinstance(x, Tensor) else np.asarray(x)) for name, x in
                 ((name, feeds[name]) for name in names)]
        signature = tuple((name, arr.shape, arr.dtype.str) for name, _, arr in given)
        checked = signature in self._plans
        out = {}
        for name, x, arr in given:
            if not checked:
                self._check_feed(name, arr)
            if isinstance(x, Tensor):
                out[name] = x
            else:
                # float32/64 carry gradients; other types (ints, bools, float16) run in NumPy
                out[name] = Tensor(arr) if arr.dtype.char in "fd" else arr
        return out, signature

    def _check_feed(self, name: str, arr: np.ndarray) -> None:
        v = self._graph.values[name]
        if v.dtype is not None and arr.dtype != v.dtype:
            raise TypeError(f"feeds[{name!r}]: expected dtype {v.dtype}, got {arr.dtype}")
        if v.shape is not None:
            if arr.ndim != len(v.shape) or any(d is not None and d != s for d, s in zip(v.shape, arr.shape)):
                want = "(" + ", ".join("?" if d is None else str(d) for d in v.shape) + ")"
                raise ValueError(f"feeds[{name!r}]: expected shape {want}, got {arr.shape}")

    def execute(self, feeds: dict, run=None) -> dict:
        """Runs the graph; returns the environment {value name: Tensor or ndarray}.
        `run(node, inputs)` runs each node (default: run_node; profile times it).
        Arrays are allocated from qk's pool meanwhile (qk.memory_pool_stats),
        and NumPy's BLAS stays on this thread (qk's pool has the cores)."""
        with pooled_arrays(), blas_on_calling_thread():
            return self._execute(feeds, run)

    def _execute(self, feeds: dict, run) -> dict:
        default_run = run is None
        run = run or run_node
        feeds, signature = self._feeds(feeds)
        g = self._graph
        params = self._params
        env = {name: params.get(name, arr) for name, arr in g.constants.items()} if g.constants else {}
        env.update(feeds)
        plan = self._plans.get(signature)
        if plan is not None:
            if len(self._plans) > 1:
                self._plans.move_to_end(signature)
            env.update(plan.static_values)
            if default_run:
                plan.run(env)
            else:
                for node in plan.nodes:
                    self._run_into(env, node, run)
            return env
        value_static = {n for n in g.constants if n not in self._params}
        shape_static = set(g.constants) | set(feeds)
        dynamic_nodes = []
        for node in g.nodes:
            self._run_into(env, node, run)
            ins = [i for i in node.inputs if i]
            if node.op_type in _SHAPE_OF:
                if all(i in shape_static for i in ins):
                    value_static.update(node.outputs)
                    shape_static.update(node.outputs)
                    continue
            elif ins and all(i in value_static for i in ins) and \
                    all(not isinstance(env[o], Tensor) for o in node.outputs if o):
                value_static.update(node.outputs)
                shape_static.update(node.outputs)
                continue
            dynamic_nodes.append(node)
            sized_by = _SHAPE_INPUTS.get(node.op_type, ())
            if all(i in shape_static for i in ins) and all(
                    node.inputs[p] in value_static for p in sized_by if p < len(node.inputs) and node.inputs[p]):
                shape_static.update(node.outputs)
        statics = {n: env[n] for n in value_static if n in env and n not in g.constants}
        self._plans[signature] = _Plan(statics, dynamic_nodes)
        if len(self._plans) > _PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)
        return env

    @staticmethod
    def _run_into(env: dict, node, run) -> None:
        outs = run(node, [env[i] if i else None for i in node.inputs])
        for name, value in zip(node.outputs, outs):
            if name:
                env[name] = value

    def profile(self, feeds: dict, repeat: int = 10) -> list[dict]:
        """Where the time of a forward pass goes: per node (in graph order)
        its op and the median of `repeat` timed passes in milliseconds (the
        first, untimed pass builds the plan and packs weights)."""
        import time

        from .._validate import require_int

        repeat = require_int(repeat, "repeat", 1)
        times = {}

        def timed(node, inputs):
            t0 = time.perf_counter()
            out = run_node(node, inputs)
            times.setdefault(id(node), []).append(time.perf_counter() - t0)
            return out

        with no_grad():
            self.execute(feeds)
            for _ in range(repeat):
                self.execute(feeds, timed)
        return [{"node": n.name, "op": n.op_type, "ms": float(np.median(times[id(n)])) * 1e3}
                for n in self._graph.nodes if id(n) in times]

    def infer_shapes(self, input_shapes: dict | None = None) -> Graph:
        """Fills every Value's shape and dtype by running once on zeros of the
        given input shapes (unknown dimensions default to 1); returns the graph.
        Inputs keep their declared (possibly symbolic) shapes."""
        g = self.graph
        feeds = {}
        for name in g.inputs:
            v = g.values[name]
            shape = (input_shapes or {}).get(name, v.shape)
            if shape is None:
                raise ValueError(f"input_shapes: the shape of input {name!r} is unknown; give it")
            feeds[name] = np.zeros(tuple(1 if d is None else d for d in shape), v.dtype or np.float32)
        with no_grad(), np.errstate(all="ignore"):  # zeros may mask every key (NaN rows); only shapes count
            env = self.execute(feeds)
        for name, val in env.items():
            if name in g.inputs or name in g.constants:
                continue  # inputs keep their symbolic dimensions
            data = graph_ops.data_of(val)
            v = g.value(name)
            v.shape, v.dtype = tuple(data.shape), data.dtype
        return g
