"""Shared fixtures: every kernel test runs once per ISA path the machine has."""

import pytest

import qk

ALL_ISAS = list(qk._qk.isa_names())  # the one list, csrc/cpu/isa_list.h


@pytest.fixture(params=ALL_ISAS)
def isa(request):
    """Caps the ISA path for one test; skips paths this machine cannot run,
    except amx in the modules that set AMX_BY_EMULATION: there the GEMMs run
    on the emulated AMX tiles (the real kernel's code on a scalar emulation
    of its intrinsics) under the best path's cap."""
    name = request.param
    if name == "amx" and name not in qk.available_isas() and getattr(request.module, "AMX_BY_EMULATION", False):
        qk._qk.set_amx_emulation(True)
        yield name
        qk._qk.set_amx_emulation(False)
        return
    if name not in qk.available_isas():
        pytest.skip(f"this machine cannot run the {name} path")
    previous = qk.get_isa()
    qk.set_isa(name)
    yield name
    qk.set_isa(previous)


@pytest.fixture(params=[1, 2])
def threads(request):
    """Runs a test with 1 and with 2 threads."""
    previous = qk.get_num_threads()
    qk.set_num_threads(request.param)
    yield request.param
    qk.set_num_threads(previous)


@pytest.fixture(scope="session")
def digits_cnn_graph():
    """(the digits CNN trained 3 epochs, its traced graph with BatchNorm folded, the digits data),
    shared by the graph PTQ and QAT tests."""
    from qk import nn
    from qk.graph import GraphModule, simplify, trace

    model, _ = nn.models.train_reference("cnn", epochs=3)
    data = nn.load_digits(images=True)
    g = trace(model, data.train[0][:1])
    simplify(g)
    return model, GraphModule(g), data
