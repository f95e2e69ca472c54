"""One training epoch of the digits CNN: qk.nn vs PyTorch (CPU, 2 threads).

    python -m pytest bench/bench_nn.py            # timings
    python -m pytest bench/bench_nn.py --benchmark-disable   # quick smoke run
"""

import numpy as np
import pytest

import qk.nn as nn

pytest.importorskip("sklearn")

BATCH = 32


@pytest.fixture(scope="module")
def digits():
    return nn.load_digits(images=True)


def qk_epoch(model, opt, x, y, order):
    for start in range(0, len(x), BATCH):
        idx = order[start : start + BATCH]
        loss = nn.cross_entropy(model(nn.Tensor(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


@pytest.mark.parametrize("blas", [None, 1], ids=["blas-default", "blas-1thread"])
def test_cnn_epoch_qk(benchmark, digits, blas):
    x, y = digits.train
    nn.manual_seed(0)
    model = nn.models.digits_cnn()
    opt = nn.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    order = np.random.default_rng(0).permutation(len(x))
    with nn.blas_threads(blas):
        loss = benchmark.pedantic(qk_epoch, args=(model, opt, x, y, order), rounds=5, warmup_rounds=1)
    assert np.isfinite(loss)


@pytest.mark.parametrize("threads", [2, 1])
def test_cnn_epoch_torch(benchmark, digits, threads):
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    x, y = (torch.from_numpy(a) for a in digits.train)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(128, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(x)))

    def epoch():
        for start in range(0, len(x), BATCH):
            idx = order[start : start + BATCH]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    try:
        loss = benchmark.pedantic(epoch, rounds=5, warmup_rounds=1)
    finally:
        torch.set_num_threads(previous)
    assert np.isfinite(loss)
