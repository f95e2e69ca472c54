"""`python -m qk demo`: quick run end to end, the table, the files, the cache,
bad options. The full run (all widths, 10 QAT epochs) is marked slow."""

import contextlib
import io
import sys

import pytest

pytest.importorskip("sklearn")  # the digits

from qk import demo  # noqa: E402
from qk.__main__ import main  # noqa: E402

COLUMNS = ["model", "weights", "FP32 acc.", "PTQ acc.", "PTQ drop (pt)", "PTQ time", "QAT acc.", "QAT drop (pt)",
           "QAT time", "size (KiB)", "latency", "speedup vs FP32"]


def _table(stdout: str) -> list[list[str]]:
    """The Markdown table in the output, as rows of cells (header first, separator dropped)."""
    lines = [line for line in stdout.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def _run(capsys, *args):
    """`python -m qk demo *args`: captured (out, err)."""
    assert main(["demo", *args]) == 0
    return capsys.readouterr()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One --quick run shared by the tests that only read its output."""
    out = tmp_path_factory.mktemp("out")
    cache = tmp_path_factory.mktemp("cache")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert main(["demo", "--quick", "--out", str(out), "--cache-dir", str(cache)]) == 0
    return dict(out=out, cache=cache, stdout=stdout.getvalue(), stderr=stderr.getvalue())


def test_quick_table(quick_run):
    table = _table(quick_run["stdout"])
    assert table[0] == COLUMNS
    rows = table[1:]
    assert [(r[0], r[1]) for r in rows] == [(m, w) for m in ("mlp", "cnn") for w in ("FP32", "INT8", "INT4", "INT2")]
    for r in rows:
        assert r[2].endswith("%") and r[9] and r[10].endswith(" ms") and r[11].endswith("x")
        if r[1] == "FP32":
            assert r[3:9] == [""] * 6 and r[11] == "1.00x"
        else:
            assert r[3].endswith("%") and r[5].endswith(" s")
            assert r[6].endswith("%") and r[8].endswith(" s")  # QAT ran: qk.qat is part of the package
    # The 8-bit model stays within a point of FP32 even with the quick recipe.
    int8 = [r for r in rows if r[1] == "INT8"]
    assert all(abs(float(r[4])) <= 1.0 for r in int8)


def test_quick_writes_markdown_and_png(quick_run):
    md = (quick_run["out"] / "qk_demo.md").read_text()
    assert _table(md)[0] == COLUMNS
    assert "PTQ within 0.5 pt" in md
    png = quick_run["out"] / "qk_demo.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not png.exists() and "matplotlib is not installed" in quick_run["stdout"]
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_caches_fp32_models(quick_run, capsys):
    assert sorted(p.name.split("-")[1] for p in quick_run["cache"].iterdir()) == ["cnn", "mlp"]
    assert "trained in" in quick_run["stderr"]
    first = demo.reference_model("mlp", 0, 10, quick_run["cache"])
    assert first[3] is True  # loaded, not trained
    trained = demo.reference_model("mlp", 0, 10, None)
    assert trained[3] is False and trained[1] == first[1]  # training is deterministic: same accuracy


def test_damaged_cache_is_retrained(tmp_path):
    from qk import __version__

    path = tmp_path / f"digits-mlp-seed0-e1-qk{__version__}.npz"
    path.write_bytes(b"not an npz")
    lines = []
    model, accuracy, _, cached = demo.reference_model("mlp", 0, 1, tmp_path, log=lines.append)
    assert not cached and "unusable" in lines[0]
    assert demo.reference_model("mlp", 0, 1, tmp_path)[3] is True  # replaced by a good one


def test_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    captured = _run(capsys, "--quick", "--models", "mlp", "--bits", "8", "--qat-epochs", "1",
                    "--out", str(tmp_path), "--no-cache")
    assert "matplotlib is not installed" in captured.out
    assert (tmp_path / "qk_demo.md").exists() and not (tmp_path / "qk_demo.png").exists()


def test_without_qat(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "_qat", lambda: None)
    captured = _run(capsys, "--quick", "--models", "cnn", "--bits", "4", "--out", str(tmp_path), "--no-cache")
    rows = _table(captured.out)[1:]
    assert rows[1][1] == "INT4" and rows[1][6:9] == ["n/a", "n/a", "n/a"]
    assert "qk.qat is not available" in captured.out


@pytest.mark.parametrize("args, message", [
    (["--bits", "9"], "--bits: expected distinct weight widths from 2 to 8, got 9"),
    (["--bits", "4,4"], "--bits: expected distinct"),
    (["--bits", "8,x"], "--bits: expected comma-separated integers, got '8,x'"),
    (["--models", "resnet"], "--models: expected distinct names from mlp, cnn, got resnet"),
    (["--qat-epochs", "0"], "--qat-epochs: expected an int >= 1, got 0"),
    (["--seed", "-1"], "--seed: expected an int >= 0, got -1"),
    (["--no-cache", "--cache-dir", "x"], "--no-cache, --cache-dir: give one or the other"),
])
def test_bad_options(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--out", str(tmp_path), *args])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_out_must_be_a_directory(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("")
    with pytest.raises(SystemExit):
        main(["demo", "--quick", "--out", str(target)])
    err = capsys.readouterr().err
    assert "--out: " in err and "exists and is not a directory" in err


def test_settings_errors():
    with pytest.raises(ValueError, match="bits: expected distinct weight widths"):
        demo.Settings(bits=(1,))
    with pytest.raises(ValueError, match="bits"):
        demo.Settings(bits=())
    with pytest.raises(ValueError, match="models"):
        demo.Settings(models=("mlp", "mlp"))
    with pytest.raises(TypeError, match="qat_epochs: expected an int"):
        demo.Settings(qat_epochs=2.5)
    with pytest.raises(ValueError, match="qat_lr"):
        demo.Settings(qat_lr=0)
    assert demo.Settings.quick(bits=[4]).bits == (4,)


def test_targets_report_misses():
    rows = [
        demo.Row("mlp", 8, 0.98, 1, 1.0, 1.0, ptq_accuracy=0.97, qat_accuracy=0.98),
        demo.Row("mlp", 4, 0.98, 1, 1.0, 1.0, ptq_accuracy=0.95, qat_accuracy=0.95),
    ]
    lines = demo.check_targets(rows)
    assert lines == [
        "MISSED: mlp INT8 PTQ within 0.5 pt of FP32 (+1.00 pt)",
        "met: mlp INT8 QAT beats PTQ where PTQ loses > 1 pt (PTQ +1.00 pt, QAT +0.00 pt)",
        "MISSED: mlp INT4 QAT within 1 pt of FP32 (+3.00 pt)",
        "MISSED: mlp INT4 QAT beats PTQ where PTQ loses > 1 pt (PTQ +3.00 pt, QAT +3.00 pt)",
    ]


@pytest.mark.slow
def test_full_run_meets_targets(tmp_path, capsys):
    captured = _run(capsys, "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache"))
    rows = _table(captured.out)[1:]
    assert [r[1] for r in rows] == ["FP32", "INT8", "INT4", "INT3", "INT2"] * 2
    targets = [line for line in captured.out.splitlines() if line.startswith(("met", "MISSED"))]
    assert targets and all(line.startswith("met") for line in targets), targets
