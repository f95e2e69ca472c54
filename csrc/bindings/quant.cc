#include "quant/quant.h"
#include "quant/add.h"
#include "bindings/bindings.h"

#include <cstdint>

namespace qk::bindings {
namespace {

quant::Layout checked_layout(size_t outer, size_t channels, size_t inner) {
  (void)product(product(outer, channels, "layout"), inner, "layout");
  return quant::Layout{outer, channels, inner};
}

}  // namespace

void bind_quant(py::module_& m) {
  m.def("quant_path", [] { return std::string(isa_name(quant::selected_isa())); });

  m.def(
      "quantize",
      [](const py::array& x, py::array& q, bool q_unsigned, size_t outer, size_t channels, size_t inner,
         const py::array& scale, const py::array& zero_point, float qmin, float qmax) {
        const quant::Layout layout = checked_layout(outer, channels, inner);
        const float* xp = input_data<float>(x, "x", layout.size());
        void* qp = output_data<uint8_t>(q, "out", layout.size());
        const float* sp = input_data<float>(scale, "scale", channels);
        const float* zp = input_data<float>(zero_point, "zero_point", channels);
        py::gil_scoped_release release;
        quant::quantize(xp, qp, q_unsigned, layout, sp, zp, qmin, qmax);
      },
      py::arg("x"), py::arg("out"), py::arg("unsigned"), py::arg("outer"), py::arg("channels"),
      py::arg("inner"), py::arg("scale"), py::arg("zero_point"), py::arg("qmin"), py::arg("qmax"));

  m.def(
      "add_quantized",
      [](const py::array& a, const py::array& b, py::array& out, float a_scale, int32_t a_zero_point, float b_scale,
         int32_t b_zero_point, float out_scale, int32_t out_zero_point, int32_t qmin, int32_t qmax) {
        const size_t n = static_cast<size_t>(a.size());
        const auto* ap = input_data<uint8_t>(a, "a", n);
        const auto* bp = input_data<uint8_t>(b, "b", n);
        auto* op = output_data<uint8_t>(out, "out", n);
        const quant::AddParams p{a_scale, b_scale, out_scale, a_zero_point, b_zero_point, out_zero_point, qmin, qmax};
        py::gil_scoped_release release;
        quant::add_quantized(ap, bp, n, p, op);
      },
      py::arg("a"), py::arg("b"), py::arg("out"), py::arg("a_scale"), py::arg("a_zero_point"), py::arg("b_scale"),
      py::arg("b_zero_point"), py::arg("out_scale"), py::arg("out_zero_point"), py::arg("qmin"), py::arg("qmax"));

  m.def(
      "dequantize",
      [](const py::array& q, bool q_unsigned, py::array& x, size_t outer, size_t channels, size_t inner,
         const py::array& scale, const py::array& zero_point) {
        const quant::Layout layout = checked_layout(outer, channels, inner);
        const void* qp = input_data<uint8_t>(q, "q", layout.size());
        float* xp = output_data<float>(x, "out", layout.size());
        const float* sp = input_data<float>(scale, "scale", channels);
        const float* zp = input_data<float>(zero_point, "zero_point", channels);
        py::gil_scoped_release release;
        quant::dequantize(qp, q_unsigned, xp, layout, sp, zp);
      },
      py::arg("q"), py::arg("unsigned"), py::arg("out"), py::arg("outer"), py::arg("channels"),
      py::arg("inner"), py::arg("scale"), py::arg("zero_point"));

  m.def(
      "fake_quantize",
      [](const py::array& x, py::array& y, size_t outer, size_t channels, size_t inner, const py::array& scale,
         const py::array& zero_point, float qmin, float qmax) {
        const quant::Layout layout = checked_layout(outer, channels, inner);
        const float* xp = input_data<float>(x, "x", layout.size());
        float* yp = output_data<float>(y, "out", layout.size());
        const float* sp = input_data<float>(scale, "scale", channels);
        const float* zp = input_data<float>(zero_point, "zero_point", channels);
        py::gil_scoped_release release;
        quant::fake_quantize(xp, yp, layout, sp, zp, qmin, qmax);
      },
      py::arg("x"), py::arg("out"), py::arg("outer"), py::arg("channels"), py::arg("inner"),
      py::arg("scale"), py::arg("zero_point"), py::arg("qmin"), py::arg("qmax"));
}

}  // namespace qk::bindings
