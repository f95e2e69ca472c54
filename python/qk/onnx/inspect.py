"""What is in an ONNX model and what qk makes of it (`python -m qk inspect`)."""

from __future__ import annotations

import numpy as np

from .importer import _Importer, _parse, _value_info, to_graph


def inspect(model) -> dict:
    """A summary of an ONNX model: producer, opset, inputs and outputs, the op
    histogram, parameter count, and each node qk cannot import with the reason
    (`unsupported`); when it imports, the rewrites import applies and the op
    histogram qk runs. Never raises for an unsupported node."""
    proto = _parse(model)
    g = proto.graph
    info = {
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "opsets": {imp.domain or "ai.onnx": imp.version for imp in proto.opset_import},
        "inputs": [], "outputs": [],
        "ops": {},
        "parameters": int(sum(np.prod(t.dims, dtype=np.int64) for t in g.initializer)),
        "unsupported": [],
        "metadata_props": {p.key: p.value for p in proto.metadata_props},
    }
    inits = {t.name for t in g.initializer}
    for vi in g.input:
        if vi.name not in inits:
            try:
                v = _value_info(vi, {})
                info["inputs"].append((v.name, v.shape, str(v.dtype)))
            except ValueError as e:
                info["unsupported"].append(str(e))
    for vi in g.output:
        info["outputs"].append(vi.name)
    for n in g.node:
        key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        info["ops"][key] = info["ops"].get(key, 0) + 1
    info["ops"] = dict(sorted(info["ops"].items(), key=lambda kv: (-kv[1], kv[0])))
    try:
        imp = _Importer(proto, np.float32)
    except ValueError as e:
        info["unsupported"].append(str(e))
        return info
    for n in g.node:
        got = imp.node(n)
        if isinstance(got, str):
            info["unsupported"].append(got)
    if not info["unsupported"]:
        try:
            graph = to_graph(proto, dtype=np.float32)
            info["rewrites"] = graph.metadata["rewrites"]
            info["qk_ops"] = graph.op_histogram()
        except ValueError as e:
            info["unsupported"].append(str(e))
    return info


def format_report(info: dict) -> str:
    lines = [f"producer: {info['producer'] or '(not recorded)'}",
             "opsets: " + ", ".join(f"{d} {v}" for d, v in info["opsets"].items())]
    for name, shape, dtype in info["inputs"]:
        dims = "?" if shape is None else "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
        lines.append(f"input  {name}: {dtype} {dims}")
    lines += [f"output {name}" for name in info["outputs"]]
    lines.append(f"parameters: {info['parameters']:,}")
    lines.append("ops in the file: " + ", ".join(f"{op} x{c}" for op, c in info["ops"].items()))
    if info["unsupported"]:
        lines.append(f"NOT supported ({len(info['unsupported'])}):")
        lines += [f"  {u}" for u in info["unsupported"]]
    else:
        lines.append("supported: every node")
        rw = info.get("rewrites", {})
        done = [f"{k.replace('_', ' ')}: {v if isinstance(v, int) else len(v)}" for k, v in rw.items()
                if (v if isinstance(v, int) else len(v))]
        if done:
            lines.append("import rewrites: " + ", ".join(done))
        lines.append("ops qk runs: " + ", ".join(f"{op} x{c}" for op, c in info.get("qk_ops", {}).items()))
    return "\n".join(lines)
