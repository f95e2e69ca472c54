"""The model IR: a `Graph` of `Node`s over named `Value`s, in topological order.

Every model qk quantizes is a Graph: ONNX import produces one, and tracing
turns any qk.nn model into one. Values are the edges (activations, weights,
constants); nodes are operations from the op registry (`qk.graph.ops`).
Constants (weights, folded shapes) are stored on the graph as NumPy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Value:
    """An edge of the graph. `shape` entries are ints or None (unknown or
    symbolic); `shape` itself is None when nothing is known."""

    name: str
    shape: tuple | None = None
    dtype: np.dtype | None = None
    producer: "Node | None" = None
    consumers: list = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Value({self.name!r}, shape={self.shape}, dtype={self.dtype})"


@dataclass(eq=False)
class Node:
    """One operation: `inputs`/`outputs` are value names ("" marks an omitted
    optional input, as in ONNX); `attrs` holds plain Python values and arrays."""

    op_type: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    name: str = ""

    def __repr__(self) -> str:
        return f"Node({self.op_type}, {self.name!r}, {self.inputs} -> {self.outputs})"


class Graph:
    """Nodes in topological order over named values.

    `inputs`/`outputs` are the names of the graph's inputs and outputs;
    `constants` maps value names to arrays (initializers); `metadata` carries
    what the model file said about itself (producer, opset, metadata_props).
    The graph keeps `Value.producer`/`consumers` up to date through its
    editing helpers; call `rebuild()` after editing `nodes` by hand.
    """

    def __init__(self, nodes=(), inputs=(), outputs=(), constants=None, values=None, metadata=None):
        self.nodes: list[Node] = list(nodes)
        self.inputs: list[str] = list(inputs)
        self.outputs: list[str] = list(outputs)
        self.constants: dict[str, np.ndarray] = dict(constants or {})
        self.metadata: dict = dict(metadata or {})
        self.values: dict[str, Value] = {}
        for v in (values or {}).values() if isinstance(values, dict) else (values or ()):
            self.values[v.name] = Value(v.name, v.shape, v.dtype)
        self.rebuild()

    # --- bookkeeping -----------------------------------------------------------

    def value(self, name: str) -> Value:
        """The Value called `name`, created on first use."""
        v = self.values.get(name)
        if v is None:
            v = self.values[name] = Value(name)
        return v

    def rebuild(self) -> None:
        """Recomputes producers and consumers, names unnamed nodes, checks the order."""
        for v in self.values.values():
            v.producer, v.consumers = None, []
        for name in self.inputs:
            self.value(name)
        for name, arr in self.constants.items():
            v = self.value(name)
            v.shape, v.dtype = tuple(arr.shape), arr.dtype
        used = set()
        for i, node in enumerate(self.nodes):
            if not node.name or node.name in used:
                node.name = f"{node.op_type}_{i}" if not node.name else f"{node.name}_{i}"
            used.add(node.name)
            for name in node.inputs:
                if name:
                    self.value(name).consumers.append(node)
            for name in node.outputs:
                if name:
                    v = self.value(name)
                    if v.producer is not None:
                        raise ValueError(f"graph: value {name!r} is produced by both {v.producer.name!r} "
                                         f"and {node.name!r}")
                    v.producer = node
        self._check_order()

    def _check_order(self) -> None:
        known = set(self.inputs) | set(self.constants) | {""}
        for node in self.nodes:
            for name in node.inputs:
                if name not in known:
                    raise ValueError(f"graph: node {node.name!r} ({node.op_type}) reads {name!r}, which is not a "
                                     "graph input, a constant or the output of an earlier node")
            known.update(node.outputs)
        for name in self.outputs:
            if name not in known:
                raise ValueError(f"graph: output {name!r} is not produced by any node")

    # --- queries ----------------------------------------------------------------

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"name: the graph has no node {name!r}")

    def producer(self, value_name: str) -> Node | None:
        v = self.values.get(value_name)
        return v.producer if v else None

    def consumers(self, value_name: str) -> list:
        v = self.values.get(value_name)
        return list(v.consumers) if v else []

    def is_constant(self, value_name: str) -> bool:
        return value_name in self.constants

    def only_consumer(self, value_name: str) -> Node | None:
        """The single node that reads `value_name`, or None if it has several
        readers or is a graph output (so fusing across it would lose a value)."""
        consumers = self.consumers(value_name)
        if len(consumers) != 1 or value_name in self.outputs:
            return None
        return consumers[0]

    def match_chain(self, start: Node, op_types) -> list | None:
        """[start, n1, n2, ...] when each next node is the only consumer of the
        previous one's first output and has the next op type in `op_types`
        (op_types[0] is start's); None otherwise."""
        if start.op_type != op_types[0]:
            return None
        chain = [start]
        for op in op_types[1:]:
            nxt = self.only_consumer(chain[-1].outputs[0])
            if nxt is None or nxt.op_type != op:
                return None
            chain.append(nxt)
        return chain

    def op_histogram(self) -> dict:
        counts: dict = {}
        for n in self.nodes:
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    # --- editing ------------------------------------------------------------------

    def replace(self, old_nodes, new_nodes) -> None:
        """Replaces the nodes `old_nodes` (a subgraph) by `new_nodes`, put where
        the first of the old ones stood; values the old nodes produced and
        nobody reads any more are dropped by `remove_dead()`."""
        old_ids = {id(n) for n in old_nodes}
        first = min(i for i, n in enumerate(self.nodes) if id(n) in old_ids)
        kept = [n for n in self.nodes if id(n) not in old_ids]
        at = sum(1 for n in self.nodes[:first] if id(n) not in old_ids)
        self.nodes = kept[:at] + list(new_nodes) + kept[at:]
        self.rebuild()

    def rename_value(self, old: str, new: str) -> None:
        """Makes every reader of `old` (and the graph outputs) read `new` instead."""
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    def remove_dead(self) -> int:
        """Drops nodes none of whose outputs reach a graph output, and unused
        constants; returns how many nodes went."""
        live = set(self.outputs)
        keep = []
        for node in reversed(self.nodes):
            if any(o in live for o in node.outputs if o):
                keep.append(node)
                live.update(i for i in node.inputs if i)
        removed = len(self.nodes) - len(keep)
        self.nodes = keep[::-1]
        self.constants = {k: v for k, v in self.constants.items() if k in live}
        self.values = {k: v for k, v in self.values.items() if k in live or k in self.inputs}
        self.rebuild()
        return removed

    def unique_name(self, base: str) -> str:
        """A value/node name not used in the graph yet, starting from `base`."""
        taken = set(self.values) | {n.name for n in self.nodes}
        if base not in taken:
            return base
        i = 1
        while f"{base}_{i}" in taken:
            i += 1
        return f"{base}_{i}"

    def copy(self) -> "Graph":
        """A deep copy of the structure; constant arrays are shared (copy-on-write by convention)."""
        nodes = [Node(n.op_type, list(n.inputs), list(n.outputs), dict(n.attrs), n.name) for n in self.nodes]
        g = Graph(nodes, self.inputs, self.outputs, dict(self.constants),
                  [Value(v.name, v.shape, v.dtype) for v in self.values.values()], dict(self.metadata))
        return g

    def __repr__(self) -> str:
        lines = [f"Graph(inputs={self.inputs}, outputs={self.outputs}, {len(self.nodes)} nodes, "
                 f"{len(self.constants)} constants)"]
        for n in self.nodes:
            lines.append(f"  {n.name}: {n.op_type}({', '.join(n.inputs)}) -> {', '.join(n.outputs)}")
        return "\n".join(lines)
