"""The reference models reach >= 97% test accuracy on the digits from a seed (needs scikit-learn)."""

import numpy as np
import pytest

import qk.nn as nn

pytest.importorskip("sklearn")


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_reference_model_accuracy(name, tmp_path):
    path = tmp_path / f"digits_{name}.npz"
    model, accuracy = nn.models.train_reference(name, seed=0, path=path)
    assert accuracy >= 0.97, f"{name}: test accuracy {accuracy:.4f} < 0.97"
    # the saved state dict reloads into a fresh model with the same accuracy
    fresh = nn.models.digits_mlp() if name == "mlp" else nn.models.digits_cnn()
    fresh.load(path)
    data = nn.load_digits(images=(name == "cnn"))
    assert nn.evaluate(fresh, data.test) == accuracy
    np.testing.assert_array_equal(nn.predict(fresh, data.test[0]), nn.predict(model, data.test[0]))
