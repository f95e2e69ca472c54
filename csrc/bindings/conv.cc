#include "conv/conv.h"
#include "conv/layout.h"
#include "conv/pool.h"
#include "bindings/bindings.h"

#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace qk::bindings {
namespace {

using gemm::Epilogue;
using gemm::PackedWeight;

// geometry: batch, height, width, channels, kernel_h, kernel_w, stride_h,
// stride_w, dilation_h, dilation_w, pad_top, pad_left, pad_bottom, pad_right,
// groups, out_channels (the Python wrapper has validated them).
conv::Shape shape_of(const std::array<size_t, 16>& g) {
  for (size_t i : {4, 5, 6, 7, 8, 9, 14})
    if (g[i] == 0) throw py::value_error("conv: kernel, strides, dilations and groups must be >= 1");
  if (g[3] % g[14] != 0 || g[15] % g[14] != 0) throw py::value_error("conv: groups must divide the channels");
  const conv::Shape s{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]};
  if (s.height + s.pad_top + s.pad_bottom < s.dilation_h * (s.kernel_h - 1) + 1 ||
      s.width + s.pad_left + s.pad_right < s.dilation_w * (s.kernel_w - 1) + 1)
    throw py::value_error("conv: the dilated kernel is larger than the padded input");
  return s;
}

// out_kind: 0 int32, 1 float, 2 requantized bytes. Keeps the bias array alive in `keep`.
Epilogue epilogue_of(size_t channels, int32_t x_zero_point, int out_kind, const py::object& scale,
                     const py::object& bias, bool relu, float out_scale, float out_zero_point, float qmin, float qmax,
                     std::vector<py::array>& keep) {
  Epilogue ep;
  ep.kind = out_kind == 0 ? Epilogue::kInt32 : (out_kind == 1 ? Epilogue::kFloat : Epilogue::kRequant);
  ep.a_zero_point = x_zero_point;
  if (ep.kind != Epilogue::kInt32) {
    keep.push_back(scale.cast<py::array>());
    ep.scale = input_data<float>(keep.back(), "scale", channels);
    if (!bias.is_none()) {
      keep.push_back(bias.cast<py::array>());
      ep.bias = input_data<float>(keep.back(), "bias", channels);
    }
  }
  ep.relu = relu;
  ep.out_scale = out_scale;
  ep.out_zero_point = out_zero_point;
  ep.qmin = qmin;
  ep.qmax = qmax;
  return ep;
}

void* output_of(py::array& out, const Epilogue& ep, size_t size) {
  if (ep.kind == Epilogue::kInt32) return output_data<int32_t>(out, "out", size);
  if (ep.kind == Epilogue::kFloat) return output_data<float>(out, "out", size);
  return output_data<uint8_t>(out, "out", size);
}

size_t output_size(const conv::Shape& s) {
  return product(product(s.batch, s.out_h() * s.out_w(), "out"), s.out_channels, "out");
}

// The checks and the call shared by both convolutions: `check(shape)`
// validates the weights, `run(x, shape, epilogue, out)` calls the kernel
// without the GIL.
template <class Check, class Run>
void convolve(const py::array& x, const std::array<size_t, 16>& geometry, int32_t x_zero_point, int out_kind,
              const py::object& scale, const py::object& bias, bool relu, float out_scale, float out_zero_point,
              float qmin, float qmax, py::array& out, Check check, Run run) {
  const conv::Shape s = shape_of(geometry);
  check(s);
  const size_t in_size = product(product(s.batch, s.height * s.width, "x"), s.channels, "x");
  const uint8_t* xp = input_data<uint8_t>(x, "x", in_size);
  std::vector<py::array> keep;
  const Epilogue ep = epilogue_of(s.out_channels, x_zero_point, out_kind, scale, bias, relu, out_scale,
                                  out_zero_point, qmin, qmax, keep);
  void* op = output_of(out, ep, output_size(s));
  py::gil_scoped_release release;
  run(xp, s, ep, op);
}

// A layout change of (n, rows, cols) images into (n, cols, rows): x and out
// must hold n * rows * cols elements of T.
template <typename T>
void bind_transpose(py::module_& m, const char* name, void (*fn)(const T*, size_t, size_t, size_t, T*)) {
  m.def(
      name,
      [fn](const py::array& x, size_t n, size_t rows, size_t cols, py::array& out) {
        const size_t size = product(product(n, rows, "x"), cols, "x");
        const T* xp = input_data<T>(x, "x", size);
        T* op = output_data<T>(out, "out", size);
        py::gil_scoped_release release;
        fn(xp, n, rows, cols, op);
      },
      py::arg("x"), py::arg("n"), py::arg("rows"), py::arg("cols"), py::arg("out"));
}

// geometry: batch, height, width, channels, kernel_h, kernel_w, stride_h,
// stride_w, dilation_h, dilation_w, pad_top, pad_left, out_h, out_w.
template <typename T>
void bind_max_pool(py::module_& m, const char* name, void (*fn)(const T*, const conv::PoolShape&, T*)) {
  m.def(
      name,
      [fn](const py::array& x, const std::array<size_t, 14>& g, py::array& out) {
        for (size_t i : {4, 5, 6, 7, 8, 9})
          if (g[i] == 0) throw py::value_error("pool: kernel, strides and dilations must be >= 1");
        const conv::PoolShape s{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13]};
        const T* xp = input_data<T>(x, "x", product(product(s.batch, s.height * s.width, "x"), s.channels, "x"));
        T* op = output_data<T>(out, "out", product(product(s.batch, s.out_h * s.out_w, "out"), s.channels, "out"));
        py::gil_scoped_release release;
        fn(xp, s, op);
      },
      py::arg("x"), py::arg("geometry"), py::arg("out"));
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("depthwise_path", [] { return std::string(isa_name(conv::depthwise_isa())); });

  // (N, C, H, W) uint8 -> (N, H, W, C), and (N, H, W, C) float -> (N, C, H, W).
  bind_transpose<uint8_t>(m, "nchw_to_nhwc_u8", conv::nchw_to_nhwc);
  bind_transpose<float>(m, "nhwc_to_nchw_f32", conv::nhwc_to_nchw);

  bind_max_pool<uint8_t>(m, "max_pool_u8", conv::max_pool_u8);
  bind_max_pool<float>(m, "max_pool_f32", conv::max_pool_f32);

  m.def(
      "channel_sums_u8",
      [](const py::array& x, size_t batch, size_t pixels, size_t channels, py::array& out) {
        if (pixels > size_t(INT32_MAX) / 255) throw py::value_error("x: too many pixels for exact int32 sums");
        const uint8_t* xp = input_data<uint8_t>(x, "x", product(product(batch, pixels, "x"), channels, "x"));
        int32_t* op = output_data<int32_t>(out, "out", product(batch, channels, "out"));
        py::gil_scoped_release release;
        conv::channel_sums_u8(xp, batch, pixels, channels, op);
      },
      py::arg("x"), py::arg("batch"), py::arg("pixels"), py::arg("channels"), py::arg("out"));

  m.def(
      "int8_conv2d",
      [](const py::array& x, const std::array<size_t, 16>& geometry,
         const std::vector<std::shared_ptr<PackedWeight>>& weights, int32_t x_zero_point, int out_kind,
         const py::object& scale, const py::object& bias, bool relu, float out_scale, float out_zero_point,
         float qmin, float qmax, py::array& out) {
        std::vector<const PackedWeight*> w;
        auto check = [&](const conv::Shape& s) {
          const size_t cg = s.channels / s.groups, og = s.out_channels / s.groups;
          if (weights.size() != s.groups) throw py::value_error("weights: one packed weight per group expected");
          for (const auto& p : weights) {
            if (p->k() != s.kernel_h * s.kernel_w * cg || p->n() != og)
              throw py::value_error("weights: a packed weight does not match the kernel and channels");
            w.push_back(p.get());
          }
        };
        convolve(x, geometry, x_zero_point, out_kind, scale, bias, relu, out_scale, out_zero_point, qmin, qmax, out,
                 check, [&](const uint8_t* xp, const conv::Shape& s, const Epilogue& ep, void* op) {
                   conv::conv2d(xp, s, w.data(), ep, op);
                 });
      },
      py::arg("x"), py::arg("geometry"), py::arg("weights"), py::arg("x_zero_point"), py::arg("out_kind"),
      py::arg("scale"), py::arg("bias"), py::arg("relu"), py::arg("out_scale"), py::arg("out_zero_point"),
      py::arg("qmin"), py::arg("qmax"), py::arg("out"));

  m.def(
      "int8_depthwise_conv2d",
      [](const py::array& x, const std::array<size_t, 16>& geometry, const py::array& taps, int32_t x_zero_point,
         int out_kind, const py::object& scale, const py::object& bias, bool relu, float out_scale,
         float out_zero_point, float qmin, float qmax, py::array& out) {
        const int16_t* tp = nullptr;
        auto check = [&](const conv::Shape& s) {
          if (s.groups != s.channels || s.out_channels != s.channels)
            throw py::value_error("conv: depthwise needs groups == channels == out_channels");
          tp = input_data<int16_t>(taps, "taps", product(s.kernel_h * s.kernel_w, s.channels, "taps"));
        };
        convolve(x, geometry, x_zero_point, out_kind, scale, bias, relu, out_scale, out_zero_point, qmin, qmax, out,
                 check, [&](const uint8_t* xp, const conv::Shape& s, const Epilogue& ep, void* op) {
                   conv::depthwise_conv2d(xp, s, tp, ep, op);
                 });
      },
      py::arg("x"), py::arg("geometry"), py::arg("taps"), py::arg("x_zero_point"), py::arg("out_kind"),
      py::arg("scale"), py::arg("bias"), py::arg("relu"), py::arg("out_scale"), py::arg("out_zero_point"),
      py::arg("qmin"), py::arg("qmax"), py::arg("out"));
}

}  // namespace qk::bindings
