#include "float_ops/float_ops.h"

#include <pybind11/stl.h>

#include <optional>

#include "bindings/bindings.h"

namespace qk::bindings {

void bind_float_ops(py::module_& m) {
  m.def("float_ops_path", [] { return std::string(isa_name(float_ops::selected_isa())); });
  m.def(
      "gelu",
      [](const py::array& x, py::array& out) {
        const size_t n = static_cast<size_t>(x.size());
        const float* xp = input_data<float>(x, "x", n);
        float* op = output_data<float>(out, "out", n);
        py::gil_scoped_release release;
        float_ops::gelu(xp, op, n);
      },
      py::arg("x"), py::arg("out"));
  m.def(
      "softmax",
      [](const py::array& x, size_t cols, py::array& out) {
        const size_t n = static_cast<size_t>(x.size());
        if (cols == 0 || n % cols != 0) throw py::value_error("softmax: cols must divide the size of x");
        const float* xp = input_data<float>(x, "x", n);
        float* op = output_data<float>(out, "out", n);
        py::gil_scoped_release release;
        float_ops::softmax(xp, op, n / cols, cols);
      },
      py::arg("x"), py::arg("cols"), py::arg("out"));
  m.def(
      "layer_norm",
      [](const py::array& x, const py::array& gamma, const std::optional<py::array>& beta, float eps, py::array& out,
         py::array& mean, py::array& inv) {
        const size_t n = static_cast<size_t>(x.size()), cols = static_cast<size_t>(gamma.size());
        if (cols == 0 || n % cols != 0) throw py::value_error("layer_norm: gamma's size must divide the size of x");
        const float* xp = input_data<float>(x, "x", n);
        const float* gp = input_data<float>(gamma, "gamma", cols);
        const float* bp = beta ? input_data<float>(*beta, "beta", cols) : nullptr;
        float* op = output_data<float>(out, "out", n);
        float* mp = output_data<float>(mean, "mean", n / cols);
        float* ip = output_data<float>(inv, "inv", n / cols);
        py::gil_scoped_release release;
        float_ops::layer_norm(xp, gp, bp, eps, n / cols, cols, op, mp, ip);
      },
      py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("eps"), py::arg("out"), py::arg("mean"),
      py::arg("inv"));
}

}  // namespace qk::bindings
