"""Observers: watch arrays go by and choose ``(scale, zero_point)``.

Every observer has ``observe(x)`` (returns `x`, so it can sit inline),
``qparams()`` (calls `choose_qparams` on the range it settled on) and
``reset()``. NaN and +-inf are ignored when measuring ranges (an inf would
make every scale infinite); an observer that saw only non-finite or zero
values returns the qparams of the range [0, 0], i.e. ``scale = eps``.
"""

from __future__ import annotations

import math

import numpy as np

from .._validate import normalize_axis
from .scheme import EPS, QScheme, choose_qparams

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_F32_MAX = float(np.finfo(np.float32).max)


class NotCalibratedError(ValueError, RuntimeError):
    """qparams() was asked of an observer that has not observed anything."""


def _require_float_array(x, name: str = "x") -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray of floats, got {type(x).__name__}")
    if x.dtype not in _FLOATS:
        raise TypeError(f"{name}: expected dtype float16, float32 or float64, got {x.dtype}")
    return x


def _check_scheme(scheme, default: QScheme) -> QScheme:
    if scheme is None:
        return default
    if not isinstance(scheme, QScheme):
        raise TypeError(f"scheme: expected a qk.quant.QScheme, got {type(scheme).__name__}")
    return scheme


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)):
        raise TypeError(f"eps: expected a float, got {type(eps).__name__}")
    eps = float(eps)
    if not (math.isfinite(eps) and np.float32(eps) > 0):
        raise ValueError(f"eps: must be finite and > 0 in float32, got {eps!r}")
    return eps


def _check_averaging_constant(c) -> float:
    if isinstance(c, bool) or not isinstance(c, (int, float, np.floating, np.integer)):
        raise TypeError(f"averaging_constant: expected a float, got {type(c).__name__}")
    c = float(c)
    if not 0.0 < c <= 1.0:
        raise ValueError(f"averaging_constant: expected a value in (0, 1], got {c!r}")
    return c


def _finite_min_max(x: np.ndarray):
    """(finite values, min, max) of a non-empty array, min and max as float64,
    or None when it has no finite value. The values are `x` itself when all
    are finite (no copy), else a 1-D copy of the finite ones. min and max are
    clamped to the float32 range (float64 inputs beyond it)."""
    mn = x.min()
    mx = x.max()
    if np.isfinite(mn) and np.isfinite(mx):
        values = x
    else:
        values = x[np.isfinite(x)]
        if values.size == 0:
            return None
        mn, mx = values.min(), values.max()
    return values, min(max(float(mn), -_F32_MAX), _F32_MAX), min(max(float(mx), -_F32_MAX), _F32_MAX)


class Observer:
    """Base class: holds the scheme and the observed/not-observed state."""

    _default_scheme = QScheme(8, signed=False)
    _per_channel = False

    def __init__(self, scheme: QScheme | None = None, *, eps: float = EPS):
        self.scheme = _check_scheme(scheme, self._default_scheme)
        if self.scheme.per_channel != self._per_channel:
            if self._per_channel:
                raise ValueError(f"scheme: {type(self).__name__} needs a per-channel scheme (axis set)")
            raise ValueError(
                f"scheme: {type(self).__name__} is per-tensor but the scheme has axis={self.scheme.axis}; "
                "use PerChannelMinMaxObserver"
            )
        self.eps = _check_eps(eps)
        self.reset()

    def reset(self) -> None:
        self._observed = False

    @property
    def observed(self) -> bool:
        """True once a non-empty array has been observed."""
        return self._observed

    def _require_observed(self) -> None:
        if not self._observed:
            raise NotCalibratedError(
                f"{type(self).__name__}.qparams(): nothing observed yet; call observe(x) on calibration data first"
            )

    def observe(self, x):
        raise NotImplementedError

    def __call__(self, x):
        return self.observe(x)

    def qparams(self):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scheme={self.scheme!r})"


# ---------------------------------------------------------------------------
# per-tensor min/max
# ---------------------------------------------------------------------------


class MinMaxObserver(Observer):
    """Running minimum and maximum of everything observed (per-tensor).

    Default scheme: 8-bit unsigned affine (like PyTorch's ``quint8``
    ``per_tensor_affine``). Ranges are kept in float32 like PyTorch's, so
    the same data give the same scale and zero point.
    """

    def reset(self) -> None:
        super().reset()
        self.min_val = np.float32(np.inf)
        self.max_val = np.float32(-np.inf)

    def _update(self, mn: np.float32, mx: np.float32) -> None:
        self.min_val = np.float32(min(self.min_val, mn))
        self.max_val = np.float32(max(self.max_val, mx))

    def observe(self, x):
        """Updates the range with the finite values of `x`; returns `x`."""
        x = _require_float_array(x)
        if x.size == 0:
            return x
        self._observed = True
        mm = _finite_min_max(x)
        if mm is not None:
            self._update(np.float32(mm[1]), np.float32(mm[2]))
        return x

    def _range(self):
        if self.min_val > self.max_val:  # observed only non-finite values
            return np.float32(0), np.float32(0)
        return self.min_val, self.max_val

    def qparams(self):
        """``(scale: numpy.float32, zero_point: int)``."""
        self._require_observed()
        lo, hi = self._range()
        return choose_qparams(lo, hi, self.scheme, eps=self.eps)

    def merge(self, other: "MinMaxObserver") -> "MinMaxObserver":
        """Folds another MinMaxObserver's range into this one (e.g. from a
        parallel calibration run); returns self."""
        if type(other) is not MinMaxObserver or type(self) is not MinMaxObserver:
            raise TypeError(f"other: expected a MinMaxObserver, got {type(other).__name__}")
        if other._observed:
            self._observed = True
            if other.min_val <= other.max_val:
                self._update(other.min_val, other.max_val)
        return self


class MovingAverageMinMaxObserver(MinMaxObserver):
    """Exponential moving average of each batch's min and max (per-tensor):
    ``min = min + c * (batch_min - min)`` with ``c = averaging_constant``,
    starting from the first batch's range, in float32 as in PyTorch."""

    def __init__(self, scheme: QScheme | None = None, *, averaging_constant: float = 0.01, eps: float = EPS):
        self.averaging_constant = _check_averaging_constant(averaging_constant)
        super().__init__(scheme, eps=eps)

    def _update(self, mn, mx) -> None:
        if self.min_val > self.max_val:
            self.min_val, self.max_val = mn, mx
            return
        c = np.float32(self.averaging_constant)
        self.min_val = np.float32(self.min_val + c * (mn - self.min_val))
        self.max_val = np.float32(self.max_val + c * (mx - self.max_val))

    def merge(self, other):
        raise TypeError("merge: a moving average cannot be merged; use MinMaxObserver or HistogramObserver")


# ---------------------------------------------------------------------------
# per-channel min/max
# ---------------------------------------------------------------------------


class PerChannelMinMaxObserver(Observer):
    """Running minimum and maximum per channel along `axis`.

    Default scheme: 8-bit signed symmetric along axis 0 (PyTorch's
    ``per_channel_symmetric`` weights). `axis` overrides the scheme's axis.
    ``qparams()`` returns a float32 array of scales and an int32 array of
    zero points, one per channel. A channel with no finite value gets the
    qparams of [0, 0].
    """

    _default_scheme = QScheme(8, signed=True, symmetric=True, axis=0)
    _per_channel = True

    def __init__(self, scheme: QScheme | None = None, *, axis: int | None = None, eps: float = EPS):
        scheme = _check_scheme(scheme, self._default_scheme)
        if axis is not None:
            scheme = scheme.with_axis(axis)  # validates
        elif scheme.axis is None:
            scheme = scheme.with_axis(0)
        super().__init__(scheme, eps=eps)

    @property
    def axis(self) -> int:
        return self.scheme.axis

    def reset(self) -> None:
        super().reset()
        self.min_val = None
        self.max_val = None

    def _batch_min_max(self, x: np.ndarray):
        if x.ndim == 0:
            raise ValueError("x: per-channel observation needs at least a 1-D array, got a 0-d array")
        axis = normalize_axis(self.axis, x.ndim)
        channels = x.shape[axis]
        if self.min_val is not None and channels != self.min_val.shape[0]:
            raise ValueError(
                f"x: expected {self.min_val.shape[0]} channels along axis {self.axis}, got {channels} (shape {x.shape})"
            )
        others = tuple(d for d in range(x.ndim) if d != axis)
        mn = x.min(axis=others) if others else x.copy()
        mx = x.max(axis=others) if others else x.copy()
        if not (np.isfinite(mn).all() and np.isfinite(mx).all()):
            finite = np.isfinite(x)
            mn = np.where(finite, x, np.inf).min(axis=others) if others else np.where(finite, x, np.inf)
            mx = np.where(finite, x, -np.inf).max(axis=others) if others else np.where(finite, x, -np.inf)
        if x.dtype == np.float64:  # clamp to the float32 range; empty channels stay min > max
            mn = np.clip(mn, -_F32_MAX, _F32_MAX)
            mx = np.clip(mx, -_F32_MAX, _F32_MAX)
        return mn.astype(np.float32), mx.astype(np.float32)

    def _update(self, mn, mx) -> None:
        if self.min_val is None:
            self.min_val, self.max_val = mn, mx
        else:
            self.min_val = np.minimum(self.min_val, mn)
            self.max_val = np.maximum(self.max_val, mx)

    def observe(self, x):
        """Updates each channel's range with the finite values of `x`; returns `x`."""
        x = _require_float_array(x)
        if x.size == 0:
            if x.ndim == 0:
                raise ValueError("x: per-channel observation needs at least a 1-D array, got a 0-d array")
            normalize_axis(self.axis, x.ndim)
            return x
        mn, mx = self._batch_min_max(x)
        self._observed = True
        self._update(mn, mx)
        return x

    def _range(self):
        empty = self.min_val > self.max_val
        lo = np.where(empty, np.float32(0), self.min_val)
        hi = np.where(empty, np.float32(0), self.max_val)
        return lo, hi

    def qparams(self):
        """``(scales: float32 array, zero_points: int32 array)``, one per channel."""
        self._require_observed()
        lo, hi = self._range()
        return choose_qparams(lo, hi, self.scheme, eps=self.eps)

    def merge(self, other: "PerChannelMinMaxObserver") -> "PerChannelMinMaxObserver":
        """Folds another PerChannelMinMaxObserver's ranges into this one; returns self."""
        if type(other) is not PerChannelMinMaxObserver or type(self) is not PerChannelMinMaxObserver:
            raise TypeError(f"other: expected a PerChannelMinMaxObserver, got {type(other).__name__}")
        if other._observed:
            if self.min_val is not None and self.min_val.shape != other.min_val.shape:
                raise ValueError(
                    f"other: has {other.min_val.shape[0]} channels, this observer has {self.min_val.shape[0]}"
                )
            self._observed = True
            self._update(other.min_val, other.max_val)
        return self


class MovingAveragePerChannelMinMaxObserver(PerChannelMinMaxObserver):
    """Per-channel exponential moving average of each batch's min and max."""

    def __init__(
        self,
        scheme: QScheme | None = None,
        *,
        axis: int | None = None,
        averaging_constant: float = 0.01,
        eps: float = EPS,
    ):
        self.averaging_constant = _check_averaging_constant(averaging_constant)
        super().__init__(scheme, axis=axis, eps=eps)

    def _update(self, mn, mx) -> None:
        if self.min_val is None:
            self.min_val, self.max_val = mn, mx
            return
        c = np.float32(self.averaging_constant)
        # A channel that has seen no finite value yet (min > max) takes the batch's range.
        fresh = self.min_val > self.max_val
        batch_empty = mn > mx
        with np.errstate(invalid="ignore", over="ignore"):
            new_min = (self.min_val + c * (mn - self.min_val)).astype(np.float32)
            new_max = (self.max_val + c * (mx - self.max_val)).astype(np.float32)
            self.min_val = np.where(fresh, mn, np.where(batch_empty, self.min_val, new_min)).astype(np.float32)
            self.max_val = np.where(fresh, mx, np.where(batch_empty, self.max_val, new_max)).astype(np.float32)

    def merge(self, other):
        raise TypeError("merge: a moving average cannot be merged; use PerChannelMinMaxObserver")


# ---------------------------------------------------------------------------
# histogram
# ---------------------------------------------------------------------------

_METHODS = ("minmax", "percentile", "entropy", "mse")


class HistogramObserver(Observer):
    """Histogram of everything observed (per-tensor), from which the range is
    chosen by `method`:

    * ``"minmax"``: the exact minimum and maximum (same as MinMaxObserver);
    * ``"percentile"``: clip at the `percentile` (e.g. 99.99) of ``|x|``
      (symmetric schemes) or at the (100 - p) and p percentiles (affine);
    * ``"entropy"``: the threshold minimising the KL divergence between the
      clipped histogram and its quantized version, as TensorRT calibrates;
    * ``"mse"``: the range minimising the expected squared quantization error
      (rounding error ``scale**2 / 12`` inside the range, squared distance to
      the clipping bound outside), searched over every bin edge.

    The histogram has `bins` equal-width bins whose edges always include 0.0.
    When a batch falls outside the range, the bin width grows by an integer
    factor and old bins are summed into new ones, so merging is exact and no
    data is stored. NaN and +-inf are ignored.
    """

    def __init__(
        self,
        scheme: QScheme | None = None,
        *,
        method: str = "minmax",
        bins: int = 2048,
        percentile: float = 99.99,
        eps: float = EPS,
    ):
        if method not in _METHODS:
            raise ValueError(f"method: expected one of {', '.join(map(repr, _METHODS))}, got {method!r}")
        self.method = method
        self.bins = require_bins(bins)
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.floating, np.integer)):
            raise TypeError(f"percentile: expected a float, got {type(percentile).__name__}")
        percentile = float(percentile)
        if not 0.0 < percentile <= 100.0:
            raise ValueError(f"percentile: expected a value in (0, 100], got {percentile!r}")
        self.percentile = percentile
        super().__init__(scheme, eps=eps)

    def reset(self) -> None:
        super().reset()
        self.min_val = np.float32(np.inf)
        self.max_val = np.float32(-np.inf)
        self.hist = np.zeros(self.bins, dtype=np.float64)
        self.width = 0.0  # bin width; 0.0 while every finite value seen is 0
        self.zero_bin = 0  # bins [0, zero_bin) hold negative values; zero is the left edge of bin zero_bin

    # ---- histogram layout ---------------------------------------------
    @property
    def bin_edges(self) -> np.ndarray:
        """The ``bins + 1`` bin edges (float64); all zeros while the width is 0."""
        return (np.arange(self.bins + 1, dtype=np.float64) - self.zero_bin) * self.width

    def _bin_index(self, x: np.ndarray) -> np.ndarray:
        """floor(x / width) + zero_bin, clipped to the bins. float32 arithmetic
        when it is safe (half the memory traffic; a value within ~1e-4 of a bin
        edge may land in the neighbouring bin), float64 otherwise."""
        inv = 1.0 / self.width
        if x.dtype != np.float64 and inv < 1e30:
            if x.dtype != np.float32:
                x = x.astype(np.float32)
            idx = x * np.float32(inv)
            idx += np.float32(self.zero_bin)
        else:
            idx = x * np.float64(inv)
            idx += self.zero_bin
        np.floor(idx, out=idx)
        np.clip(idx, 0, self.bins - 1, out=idx)
        return idx.astype(np.intp)

    def _init_layout(self, mn: float, mx: float) -> None:
        """Width and zero bin for the range [mn, mx] (which includes 0, and is not [0, 0])."""
        width = (mx - mn) / (self.bins - 1)
        zero_bin = min(int(math.ceil(-mn / width)), self.bins - 1)
        self.width, self.zero_bin = width, zero_bin

    def _grow(self, mn: float, mx: float) -> None:
        """Widens the histogram to cover [mn, mx] (which includes 0)."""
        if self.width == 0.0:
            count = self.hist.sum()
            self._init_layout(mn, mx)
            self.hist[:] = 0.0
            self.hist[min(self.zero_bin, self.bins - 1)] = count
            return
        w, a, n = self.width, self.zero_bin, self.bins
        if max(-mn, mx) / w > float(n) * 2.0**40:
            # The old histogram would shrink into one bin: start a new layout
            # and move each old bin's mass to the new bin holding its centre.
            old_centres = (np.arange(n) - a + 0.5) * w
            old = self.hist
            self._init_layout(mn, mx)
            target = np.clip(np.floor(old_centres / self.width) + self.zero_bin, 0, n - 1).astype(np.intp)
            self.hist = np.bincount(target, weights=old, minlength=n).astype(np.float64)
            return
        # Bins needed below and above zero, in old widths (a value a hair past an
        # edge is clipped into the edge bin rather than doubling the width).
        left = max(a, int(math.ceil(-mn / w - 1e-9)))
        right = max(n - a, int(math.ceil(mx / w - 1e-9)))
        if left == a and right == n - a:
            return
        k = max(1, -(-(left + right) // n))
        while -(-left // k) + -(-right // k) > n:
            k += 1
        new_a = -(-left // k)
        # Old bin i covers [(i - a) w, (i - a + 1) w): it falls inside new bin floor((i - a) / k) + new_a.
        target = (np.arange(n) - a) // k + new_a
        self.hist = np.bincount(target, weights=self.hist, minlength=n).astype(np.float64)
        self.width, self.zero_bin = w * k, new_a

    def observe(self, x):
        """Adds the finite values of `x` to the histogram; returns `x`."""
        x = _require_float_array(x)
        if x.size == 0:
            return x
        self._observed = True
        mm = _finite_min_max(x)
        if mm is None:
            return x
        values, mn, mx = mm
        self.min_val = np.float32(min(self.min_val, np.float32(mn)))
        self.max_val = np.float32(max(self.max_val, np.float32(mx)))
        lo, hi = min(mn, 0.0), max(mx, 0.0)
        if self.width == 0.0 and lo == 0.0 and hi == 0.0:
            self.hist[0] += values.size  # all zeros, width still 0
            return x
        self._grow(lo, hi)
        self.hist += np.bincount(self._bin_index(values.ravel()), minlength=self.bins)
        return x

    def merge(self, other: "HistogramObserver") -> "HistogramObserver":
        """Folds another HistogramObserver's histogram into this one; returns self.

        The other histogram's bins are spread over this one's in proportion to
        their overlap (values assumed uniform within a bin), so the merged
        histogram is accurate to within a bin."""
        if not isinstance(other, HistogramObserver):
            raise TypeError(f"other: expected a HistogramObserver, got {type(other).__name__}")
        if other.bins != self.bins:
            raise ValueError(f"other: has {other.bins} bins, this observer has {self.bins}")
        if not other._observed:
            return self
        self._observed = True
        if other.min_val > other.max_val:
            return self
        self.min_val = np.float32(min(self.min_val, other.min_val))
        self.max_val = np.float32(max(self.max_val, other.max_val))
        if other.width == 0.0:
            if self.width == 0.0:
                self.hist[0] += other.hist.sum()
            else:
                self.hist[min(self.zero_bin, self.bins - 1)] += other.hist.sum()
            return self
        if self.width == 0.0 and self.hist.sum() == 0.0:
            self.hist = other.hist.copy()
            self.width, self.zero_bin = other.width, other.zero_bin
            return self
        edges = other.bin_edges
        self._grow(min(float(edges[0]), 0.0), max(float(edges[-1]), 0.0))
        cdf = np.concatenate([[0.0], np.cumsum(other.hist)])
        mine = np.interp(self.bin_edges, edges, cdf)
        self.hist += np.diff(mine)
        return self

    # ---- choosing the range ---------------------------------------------
    def _abs_hist(self) -> np.ndarray:
        """Histogram of |x| on bins [j w, (j + 1) w), j = 0, 1, ..."""
        a, n = self.zero_bin, self.bins
        m = max(a, n - a)
        out = np.zeros(m, dtype=np.float64)
        out[: n - a] += self.hist[a:]
        out[:a] += self.hist[:a][::-1]
        return out

    def _levels(self) -> int:
        return self.scheme.qmax - self.scheme.qmin + 1

    def range(self) -> tuple[float, float]:
        """The ``(min, max)`` range chosen by `method`, within the observed
        [min, max] (and widened to include 0 by `choose_qparams` later)."""
        self._require_observed()
        lo, hi = self._choose_range()
        return float(lo), float(hi)

    def _choose_range(self):
        lo, hi = float(self.min_val), float(self.max_val)
        if lo > hi:
            return 0.0, 0.0
        if self.method == "minmax" or self.width == 0.0:
            return lo, hi
        symmetric = self.scheme.symmetric
        one_sided = lo >= 0.0 or hi <= 0.0

        def clamp(a, b):
            # within the observed range, and including 0 (as choose_qparams will)
            return min(0.0, max(lo, a)), max(0.0, min(hi, b))

        if self.method == "percentile":
            if symmetric:
                t = _quantile(self._abs_hist(), self.width, self.percentile / 100.0)
                return clamp(-t, t)
            start = float(self.bin_edges[0])
            q_lo = _quantile(self.hist, self.width, 1.0 - self.percentile / 100.0, start)
            q_hi = _quantile(self.hist, self.width, self.percentile / 100.0, start)
            return clamp(q_lo, q_hi)
        if self.method == "entropy":
            if symmetric or not one_sided:
                levels = self._levels() // 2
            else:
                levels = self._levels()
            t = _kl_threshold(self._abs_hist(), levels) * self.width
            return clamp(-t, t)
        # mse
        if symmetric:
            half = (self.scheme.qmax - self.scheme.qmin) / 2.0
            t = _mse_symmetric(self._abs_hist(), half) * self.width
            return clamp(-t, t)
        i, j = _mse_affine(self.hist, self.zero_bin, self.scheme.qmax - self.scheme.qmin)
        return clamp(-i * self.width, j * self.width)

    def qparams(self):
        """``(scale: numpy.float32, zero_point: int)`` for the range chosen by `method`."""
        lo, hi = self.range()
        return choose_qparams(lo, hi, self.scheme, eps=self.eps)

    def __repr__(self) -> str:
        return f"HistogramObserver(scheme={self.scheme!r}, method={self.method!r}, bins={self.bins})"


def require_bins(bins) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)):
        raise TypeError(f"bins: expected an integer, got {type(bins).__name__}")
    bins = int(bins)
    if not 8 <= bins <= 16384:
        raise ValueError(f"bins: expected an integer in [8, 16384], got {bins}")
    return bins


def _quantile(hist: np.ndarray, width: float, q: float, start: float = 0.0) -> float:
    """Value below which a fraction `q` of the mass lies (linear within a bin);
    bins are [start + j width, start + (j + 1) width)."""
    cdf = np.cumsum(hist)
    total = cdf[-1]
    if total <= 0:
        return 0.0
    target = q * total
    j = int(np.searchsorted(cdf, target, side="left"))
    j = min(j, hist.size - 1)
    below = cdf[j - 1] if j > 0 else 0.0
    frac = (target - below) / hist[j] if hist[j] > 0 else 1.0
    return float(start + (j + min(max(frac, 0.0), 1.0)) * width)


_KL_SMOOTH = 1e-4


def _kl_threshold(hist: np.ndarray, levels: int) -> int:
    """TensorRT's entropy calibration over a histogram of |x|: the number of
    bins i (levels <= i <= len(hist)) whose clipped distribution diverges
    least (KL) from its quantization to `levels` levels; returns i.

    For each candidate i: P is the first i bins with the mass of the bins past
    i added to the last one; Q splits the first i bins (without that outlier
    mass) into `levels` chunks and spreads each chunk's mass evenly over the
    bins where P is nonzero. Both are smoothed (a little mass moved onto empty
    bins, as MXNet/TensorRT do) and normalized. Candidates are evaluated in
    vectorized blocks.
    """
    nonzero = np.nonzero(hist)[0]
    if nonzero.size == 0:
        return hist.size
    m = int(nonzero[-1]) + 1  # bins past the last nonzero one add nothing
    if m <= levels:
        return m
    h = np.asarray(hist[:m], dtype=np.float64)
    prefix = np.concatenate([[0.0], np.cumsum(h)])
    total = prefix[-1]
    cands = np.arange(levels, m + 1)
    cands = cands[prefix[cands] > 0]
    b = np.arange(m)
    block = max(1, (1 << 18) // m)
    best_i, best_kl = m, np.inf
    for s0 in range(0, cands.size, block):
        i = cands[s0:s0 + block]
        rows = np.arange(i.size)
        col = i[:, None]
        valid = b[None, :] < col
        p = np.where(valid, h[None, :], 0.0)
        p[rows, i - 1] += total - prefix[i]
        nz = p > 0
        chunk = np.where(valid, ((b[None, :] + 1) * levels + col - 1) // col - 1, 0)
        flat = (rows[:, None] * levels + chunk).ravel()
        chunk_sum = np.bincount(flat, weights=np.where(valid, h[None, :], 0.0).ravel(), minlength=i.size * levels)
        chunk_nz = np.bincount(flat, weights=nz.ravel().astype(np.float64), minlength=i.size * levels)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_bin = (chunk_sum / chunk_nz)[flat].reshape(p.shape)
        q = np.where(nz, per_bin, 0.0)
        ps, ok_p = _smooth_rows(p, valid)
        qs, ok_q = _smooth_rows(q, valid)
        with np.errstate(divide="ignore", invalid="ignore"):
            ps /= ps.sum(axis=1, keepdims=True)
            qs /= qs.sum(axis=1, keepdims=True)
            terms = np.where(valid, ps * np.log(np.where(valid, ps / qs, 1.0)), 0.0)
        kl = np.where(ok_p & ok_q, terms.sum(axis=1), np.inf)
        k = int(np.argmin(kl))
        if kl[k] < best_kl:
            best_kl, best_i = float(kl[k]), int(i[k])
    return best_i


def _smooth_rows(p: np.ndarray, valid: np.ndarray):
    """Row-wise smoothing over the valid bins: each empty bin gets eps, taken
    evenly from the nonzero ones (floored at a tiny positive value). Returns
    the smoothed rows (0 outside `valid`) and which rows had any mass."""
    zeros = valid & (p == 0)
    n_nonzero = valid.sum(axis=1) - zeros.sum(axis=1)
    ok = n_nonzero > 0
    eps1 = _KL_SMOOTH * zeros.sum(axis=1) / np.maximum(n_nonzero, 1)
    out = np.where(zeros, _KL_SMOOTH, p - eps1[:, None])
    np.maximum(out, _KL_SMOOTH * 1e-3, out=out)
    out[~valid] = 0.0
    return out, ok


def _clip_errors_right(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every cut c = 0..len(hist) (in bin widths): the count of values in
    bins >= c and their summed squared distance to c, with values uniform
    within their bin (so a bin centred at r contributes (r - c)**2 + 1/12)."""
    n = hist.size
    r = np.arange(n, dtype=np.float64) + 0.5
    # suffix sums S_k = sum_{b >= c} n_b r_b^k
    s0 = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])
    s1 = np.concatenate([np.cumsum((hist * r)[::-1])[::-1], [0.0]])
    s2 = np.concatenate([np.cumsum((hist * r * r)[::-1])[::-1], [0.0]])
    c = np.arange(n + 1, dtype=np.float64)
    err = s2 - 2.0 * c * s1 + c * c * s0 + s0 / 12.0
    return s0, np.maximum(err, 0.0)


def _mse_symmetric(hist: np.ndarray, half: float) -> int:
    """Threshold t (in bin widths, 1..len(hist)) minimising the expected squared
    error of a symmetric grid with scale t / half over the |x| histogram."""
    total = hist.sum()
    clipped, clip_err = _clip_errors_right(hist)
    t = np.arange(hist.size + 1, dtype=np.float64)
    scale = t / half
    err = (total - clipped) * scale * scale / 12.0 + clip_err
    err[0] = np.inf
    return int(np.argmin(err))


def _mse_affine(hist: np.ndarray, zero_bin: int, steps: int) -> tuple[int, int]:
    """(i, j): the range [-i, j] (in bin widths, edges of the signed histogram
    whose zero is the left edge of bin `zero_bin`) minimising the expected
    squared error of an affine grid with scale (i + j) / steps."""
    total = hist.sum()
    pos = hist[zero_bin:]
    neg = hist[:zero_bin][::-1]
    right_count, right_err = _clip_errors_right(pos)  # index j = 0..len(pos)
    left_count, left_err = _clip_errors_right(neg)  # index i = 0..len(neg)
    j = np.arange(pos.size + 1, dtype=np.float64)[None, :]
    best = (np.inf, 0, 1)
    rows = max(1, (1 << 20) // (pos.size + 1))  # bound the temporary to ~1M entries
    for start in range(0, neg.size + 1, rows):
        stop = min(neg.size + 1, start + rows)
        i = np.arange(start, stop, dtype=np.float64)[:, None]
        scale = (i + j) / steps
        err = (total - left_count[start:stop, None] - right_count[None, :]) * scale * scale / 12.0
        err += left_err[start:stop, None]
        err += right_err[None, :]
        if start == 0:
            err[0, 0] = np.inf  # the empty range
        flat = int(np.argmin(err))
        bi, bj = divmod(flat, pos.size + 1)
        if err[bi, bj] < best[0]:
            best = (float(err[bi, bj]), start + bi, bj)
    return best[1], best[2]
