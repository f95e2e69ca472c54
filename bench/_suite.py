"""Settings the bench files share: pinned threads, quick mode, peer sessions.

QK_BENCH_THREADS (default 2) pins qk, NumPy's BLAS, PyTorch and ONNX Runtime
to the same thread count. Quick mode (QK_BENCH_QUICK=1, `--bench-quick`, or
`--benchmark-disable`, which bench/conftest.py turns into QK_BENCH_QUICK=1)
swaps every size list for a small one: a smoke run then takes seconds.
"""

from __future__ import annotations

import os

import pytest

THREADS = int(os.environ.get("QK_BENCH_THREADS", "2"))


def quick() -> bool:
    return os.environ.get("QK_BENCH_QUICK", "") not in ("", "0")


def sizes(full, small):
    """`full` normally, `small` in quick mode (read when a bench file is imported)."""
    return small if quick() else full


def ort_session(model):
    """An ONNX Runtime CPU session for an onnx ModelProto, pinned to THREADS."""
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def onnx_graph(nodes, inputs, outputs, initializers=(), ms_domain=False):
    """A one-graph onnx model; inputs/outputs are (name, TensorProto type, shape)."""
    pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        nodes, "bench", [helper.make_tensor_value_info(*i) for i in inputs],
        [helper.make_tensor_value_info(*o) for o in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in dict(initializers).items()])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.microsoft", 1)] if ms_domain else [])
    return helper.make_model(graph, opset_imports=opsets)
