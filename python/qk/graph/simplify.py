"""Graph rewrites applied on import: constant folding, BatchNorm folding and
fusion of written-out patterns into the single ops they are (so they run as
one op and quantize as one layer). Each rewrite works by single-consumer
pattern on the graph, so a value that something else also reads is never
fused away.
"""

from __future__ import annotations

import math

import numpy as np

from . import ops as graph_ops
from .ir import Graph, Node

_FOLD_LIMIT = 1 << 24  # elements: a constant this large is left to run time rather than stored


def const(g: Graph, name: str):
    return g.constants.get(name) if name else None


def scalar(g: Graph, name: str):
    """The value of a one-element constant, else None."""
    c = const(g, name)
    return float(c.ravel()[0]) if c is not None and c.size == 1 else None


def _other(node: Node, name: str) -> str | None:
    """The other input of a binary node, when one input is `name`."""
    a, b = node.inputs[0], node.inputs[1]
    return b if a == name else (a if b == name else None)


def fold_constants(g: Graph) -> int:
    """Evaluates nodes whose inputs are all constants; returns how many."""
    folded = 0
    keep = []
    for node in g.nodes:
        ins = [i for i in node.inputs if i]
        if ins and all(i in g.constants for i in ins) and node.op_type not in ("Dropout",):
            outs = graph_ops.get(node.op_type).run(node.attrs, *[g.constants.get(i) if i else None
                                                                  for i in node.inputs])
            outs = outs if isinstance(outs, tuple) else (outs,)
            arrays = [np.asarray(graph_ops.data_of(o)) for o in outs]
            if sum(a.size for a in arrays) <= _FOLD_LIMIT:
                for name, arr in zip(node.outputs, arrays):
                    if name:
                        g.constants[name] = arr
                folded += 1
                continue
        keep.append(node)
    g.nodes = keep
    g.rebuild()
    return folded


def remove_identities(g: Graph) -> int:
    """Drops Identity and inference Dropout nodes (their readers read the input)."""
    removed = 0
    for node in list(g.nodes):
        if node.op_type not in ("Identity", "Dropout") or node.outputs[0] in g.outputs:
            continue
        if node.op_type == "Dropout" and (len(node.outputs) > 1 and node.outputs[1] and g.consumers(node.outputs[1])):
            continue
        g.nodes.remove(node)
        g.rename_value(node.outputs[0], node.inputs[0])
        removed += 1
    g.rebuild()
    return removed


def batchnorm_fold_factors(gamma, beta, mean, var, eps: float, bias=None) -> tuple[np.ndarray, np.ndarray]:
    """(f, b') in float64 for folding an inference BatchNorm into the layer
    before it: w' = w * f along the output channels, b' = (b - mean) * f + beta.
    The one formulation of the fold (graph rewrite and qk.nn models alike), so
    both give the same float32 weights bit for bit."""
    gamma, beta, mean, var = (np.asarray(p, np.float64) for p in (gamma, beta, mean, var))
    f = gamma / np.sqrt(var + eps)
    b = np.zeros(len(f)) if bias is None else np.asarray(bias, np.float64).reshape(-1)
    return f, (b - mean) * f + beta


def fold_batchnorm(g: Graph) -> list:
    """Folds an inference BatchNormalization into the Conv, ConvTranspose or
    Gemm before it when that layer's output has no other reader and the
    weights are constants. Returns the names of the layers folded into.

    w' = w * gamma / sqrt(var + eps);  b' = (b - mean) * gamma / sqrt(var + eps) + beta
    """
    folded = []
    for bn in [n for n in g.nodes if n.op_type == "BatchNormalization"]:
        layer = g.producer(bn.inputs[0])
        if layer is None or layer.op_type not in ("Conv", "ConvTranspose", "Gemm") or \
                g.only_consumer(bn.inputs[0]) is not bn or len(bn.outputs) > 1:
            continue
        params = [const(g, i) for i in bn.inputs[1:5]]
        w = const(g, layer.inputs[1])
        bias_name = layer.inputs[2] if len(layer.inputs) > 2 else ""
        bias = const(g, bias_name) if bias_name else None
        if w is None or any(p is None for p in params) or (bias_name and bias is None):
            continue
        if layer.op_type == "Gemm":
            if bias is not None and bias.ndim > 1 and bias.shape[0] != 1:
                continue
            if bias is not None:
                bias = bias.reshape(-1) * layer.attrs.get("beta", 1.0)
            layer.attrs["beta"] = 1.0
        f, b2 = batchnorm_fold_factors(*params, bn.attrs.get("epsilon", 1e-5), bias)
        if layer.op_type == "Conv":
            w2 = w * f.reshape((-1,) + (1,) * (w.ndim - 1))
        elif layer.op_type == "ConvTranspose":
            grp = layer.attrs.get("group", 1)
            shape = w.shape
            w2 = (w.reshape((grp, shape[0] // grp, shape[1]) + shape[2:]) *
                  f.reshape((grp, 1, shape[1]) + (1,) * (w.ndim - 2))).reshape(shape)
        else:
            w2 = w * (f[:, None] if layer.attrs.get("transB", 0) else f[None, :])
        wname, bname = g.unique_name(layer.inputs[1] + "_bnfold"), g.unique_name(bn.inputs[1] + "_bnfold")
        g.constants[wname], g.constants[bname] = w2.astype(w.dtype), b2.astype(w.dtype)
        layer.inputs = [layer.inputs[0], wname, bname]
        layer.outputs = [bn.outputs[0]]
        g.nodes.remove(bn)
        g.rebuild()
        folded.append(layer.name)
    g.remove_dead()
    return folded


def fuse_linear(g: Graph) -> int:
    """MatMul(x, W) + Add(b), W a 2-D constant and b a constant of N values -> Linear(x, W, b)."""
    fused = 0
    for mm in [n for n in g.nodes if n.op_type == "MatMul"]:
        w = const(g, mm.inputs[1])
        add = g.only_consumer(mm.outputs[0])
        if w is None or w.ndim != 2 or add is None or add.op_type != "Add":
            continue
        bname = _other(add, mm.outputs[0])
        b = const(g, bname)
        if b is None or b.size != w.shape[1] or b.shape[-1] != w.shape[1]:
            continue
        if bname in g.constants and b.ndim != 1:
            bname = g.unique_name(bname + "_flat")
            g.constants[bname] = b.reshape(-1)
        g.replace([mm, add], [Node("Linear", [mm.inputs[0], mm.inputs[1], bname], [add.outputs[0]], {}, mm.name)])
        fused += 1
    if fused:
        g.remove_dead()
    return fused


def _close(v, target, tol=1e-3) -> bool:
    return v is not None and abs(v - target) <= tol * abs(target)


def _mul_by(g: Graph, node: Node | None, value: float):
    """If node multiplies (or divides) by the constant `value`: its other input, else None."""
    if node is None:
        return None
    for i, other in ((0, 1), (1, 0)):
        if node.op_type == "Mul" and _close(scalar(g, node.inputs[other]), value):
            return node.inputs[i]
    if node.op_type == "Div" and _close(scalar(g, node.inputs[1]), 1 / value):
        return node.inputs[0]
    return None


def fuse_gelu(g: Graph) -> int:
    """The written-out erf GELU, x * 0.5 * (1 + erf(x / sqrt(2))) in any of
    its usual orders -> Gelu(x)."""
    fused = 0
    for erf in [n for n in g.nodes if n.op_type == "Erf"]:
        scaled = g.producer(erf.inputs[0])
        x = _mul_by(g, scaled, 1 / math.sqrt(2))
        add = g.only_consumer(erf.outputs[0])
        if x is None or add is None or add.op_type != "Add" or not _close(scalar(g, _other(add, erf.outputs[0])), 1.0):
            continue
        m1 = g.only_consumer(add.outputs[0])
        if m1 is None or m1.op_type != "Mul":
            continue
        other = _other(m1, add.outputs[0])
        chain, out = None, None
        if other == x:  # x * (1 + erf) * 0.5
            m2 = g.only_consumer(m1.outputs[0])
            if _mul_by(g, m2, 0.5) == m1.outputs[0]:
                chain, out = [scaled, erf, add, m1, m2], m2.outputs[0]
        elif _mul_by(g, g.producer(other), 0.5) == x and g.only_consumer(other) is m1:  # (x * 0.5) * (1 + erf)
            chain, out = [g.producer(other), scaled, erf, add, m1], m1.outputs[0]
        elif _mul_by(g, m1, 0.5) == add.outputs[0]:  # x * ((1 + erf) * 0.5)
            m2 = g.only_consumer(m1.outputs[0])
            if m2 is not None and m2.op_type == "Mul" and _other(m2, m1.outputs[0]) == x:
                chain, out = [scaled, erf, add, m1, m2], m2.outputs[0]
        if chain is None or g.only_consumer(scaled.outputs[0]) is not erf:
            continue
        g.replace(chain, [Node("Gelu", [x], [out], {"approximate": "none"}, erf.name)])
        fused += 1
    return fused


def fuse_layernorm(g: Graph) -> int:
    """ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div[/Mul gamma][/Add beta] -> LayerNormalization."""
    fused = 0
    for mean in [n for n in g.nodes if n.op_type == "ReduceMean"]:
        if mean not in g.nodes:
            continue
        x = mean.inputs[0]
        axes = const(g, mean.inputs[1]) if len(mean.inputs) > 1 else None
        rank = len(g.values[x].shape) if g.values[x].shape is not None else None
        if axes is None or axes.size != 1 or not mean.attrs.get("keepdims", 1):
            continue
        ax = int(axes.ravel()[0])
        if ax != -1 and (rank is None or ax != rank - 1):  # LayerNormalization here means the last axis
            continue
        sub = g.only_consumer(mean.outputs[0])
        if sub is None or sub.op_type != "Sub" or sub.inputs != [x, mean.outputs[0]]:
            continue
        readers = g.consumers(sub.outputs[0])
        pow_ = next((n for n in readers if n.op_type == "Pow" and _close(scalar(g, n.inputs[1]), 2.0)), None)
        div = next((n for n in readers if n.op_type == "Div" and n.inputs[0] == sub.outputs[0]), None)
        if len(readers) != 2 or pow_ is None or div is None:
            continue
        var = g.only_consumer(pow_.outputs[0])
        if var is None or var.op_type != "ReduceMean" or len(var.inputs) < 2 or \
                const(g, var.inputs[1]) is None or const(g, var.inputs[1]).size != 1 or \
                int(const(g, var.inputs[1]).ravel()[0]) != ax:
            continue
        add_eps = g.only_consumer(var.outputs[0])
        eps = scalar(g, _other(add_eps, var.outputs[0])) if add_eps is not None and add_eps.op_type == "Add" else None
        sqrt = g.only_consumer(add_eps.outputs[0]) if eps is not None else None
        if sqrt is None or sqrt.op_type != "Sqrt" or g.only_consumer(sqrt.outputs[0]) is not div or \
                div.inputs[1] != sqrt.outputs[0]:
            continue
        chain = [mean, sub, pow_, var, add_eps, sqrt, div]
        out = div.outputs[0]
        mul = g.only_consumer(out)
        gamma = const(g, _other(mul, out)) if mul is not None and mul.op_type == "Mul" else None
        beta = None
        if gamma is not None:
            chain.append(mul)
            out = mul.outputs[0]
            add = g.only_consumer(out)
            beta = const(g, _other(add, out)) if add is not None and add.op_type == "Add" else None
            if beta is not None:
                chain.append(add)
                out = add.outputs[0]
        width = gamma.shape[-1] if gamma is not None else (g.values[x].shape or [None])[-1]
        if width is None:
            continue
        dtype = gamma.dtype if gamma is not None else np.float32
        gname, bname = g.unique_name(mean.name + "_scale"), g.unique_name(mean.name + "_bias")
        g.constants[gname] = (np.broadcast_to(gamma, (width,)) if gamma is not None else np.ones(width)).astype(dtype)
        g.constants[bname] = (np.broadcast_to(beta, (width,)) if beta is not None else np.zeros(width)).astype(dtype)
        g.replace(chain, [Node("LayerNormalization", [x, gname, bname], [out], {"axis": -1, "epsilon": eps},
                               mean.name)])
        fused += 1
    if fused:
        g.remove_dead()
    return fused


def fuse_hardswish(g: Graph) -> int:
    """x * HardSigmoid(x) (alpha 1/6, beta 0.5) and x * Clip(x + 3, 0, 6) / 6 -> HardSwish(x)."""
    fused = 0
    for node in list(g.nodes):
        if node not in g.nodes:
            continue
        chain = None
        if node.op_type == "HardSigmoid" and _close(node.attrs.get("alpha", 0.2), 1 / 6) and \
                _close(node.attrs.get("beta", 0.5), 0.5):
            x = node.inputs[0]
            mul = g.only_consumer(node.outputs[0])
            if mul is not None and mul.op_type == "Mul" and _other(mul, node.outputs[0]) == x:
                chain, out = [node, mul], mul.outputs[0]
        elif node.op_type == "Add" and _close(scalar(g, node.inputs[1]), 3.0):
            x = node.inputs[0]
            clip = g.only_consumer(node.outputs[0])
            if clip is None or clip.op_type != "Clip" or len(clip.inputs) < 3 or \
                    scalar(g, clip.inputs[1]) != 0.0 or scalar(g, clip.inputs[2]) != 6.0:
                continue
            nxt = g.only_consumer(clip.outputs[0])
            if _mul_by(g, nxt, 1 / 6) == clip.outputs[0]:  # (Clip / 6) * x
                mul = g.only_consumer(nxt.outputs[0])
                if mul is not None and mul.op_type == "Mul" and _other(mul, nxt.outputs[0]) == x:
                    chain, out = [node, clip, nxt, mul], mul.outputs[0]
            elif nxt is not None and nxt.op_type == "Mul" and _other(nxt, clip.outputs[0]) == x:  # (x * Clip) / 6
                last = g.only_consumer(nxt.outputs[0])
                if _mul_by(g, last, 1 / 6) == nxt.outputs[0]:
                    chain, out = [node, clip, nxt, last], last.outputs[0]
        if chain:
            g.replace(chain, [Node("HardSwish", [x], [out], {}, node.name)])
            fused += 1
    if fused:
        g.remove_dead()
    return fused


def fuse_masked_softmax(g: Graph) -> int:
    """Softmax(x + mask) over the last axis, and the NaN guard exporters put
    after it (Where(IsNaN(y), 0, y)) -> MaskedSoftmax(x, mask): attention's
    scores, mask, softmax and guard were four passes over the largest tensor
    of a BERT layer, three of them NumPy's on one thread."""
    fused = 0
    for soft in [n for n in g.nodes if n.op_type == "Softmax"]:
        add = g.producer(soft.inputs[0])
        if (soft.attrs.get("axis", -1) != -1 or soft.attrs.get("coerce_2d") or add is None or add.op_type != "Add"
                or g.only_consumer(add.outputs[0]) is not soft):
            continue
        chain, out, nan_to_zero = [add, soft], soft.outputs[0], 0
        readers = g.consumers(soft.outputs[0])
        isnan = next((n for n in readers if n.op_type == "IsNaN"), None)
        where = next((n for n in readers if n.op_type == "Where"), None)
        if (len(readers) == 2 and isnan is not None and where is not None and soft.outputs[0] not in g.outputs
                and g.only_consumer(isnan.outputs[0]) is where and where.inputs[0] == isnan.outputs[0]
                and where.inputs[2] == soft.outputs[0] and scalar(g, where.inputs[1]) == 0.0):
            chain, out, nan_to_zero = chain + [isnan, where], where.outputs[0], 1
        g.replace(chain, [Node("MaskedSoftmax", list(add.inputs), [out], {"nan_to_zero": nan_to_zero}, soft.name)])
        fused += 1
    return fused


def simplify(g: Graph) -> dict:
    """All import-time rewrites, in order; returns what each did."""
    report = {"constants_folded": fold_constants(g), "identities_removed": remove_identities(g)}
    report["batchnorm_folded"] = fold_batchnorm(g)
    report["linear_fused"] = fuse_linear(g)
    report["gelu_fused"] = fuse_gelu(g)
    report["layernorm_fused"] = fuse_layernorm(g)
    report["hardswish_fused"] = fuse_hardswish(g)
    report["masked_softmax_fused"] = fuse_masked_softmax(g)
    g.remove_dead()
    return report
