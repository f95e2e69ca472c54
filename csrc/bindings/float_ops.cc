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
      [](const py::array& x, size_t cols, py::array& out, const std::optional<py::array>& mask,
         const std::optional<py::array>& mask_rows, bool nan_to_zero) {
        const size_t n = static_cast<size_t>(x.size());
        if (cols == 0 || n % cols != 0) throw py::value_error("softmax: cols must divide the size of x");
        const size_t rows = n / cols;
        const float* xp = input_data<float>(x, "x", n);
        float* op = output_data<float>(out, "out", n);
        const float* mp = nullptr;
        const int64_t* rp = nullptr;
        if (mask.has_value() != mask_rows.has_value()) throw py::value_error("softmax: mask and mask_rows go together");
        if (mask) {
          const size_t mask_size = static_cast<size_t>(mask->size());
          mp = input_data<float>(*mask, "mask", mask_size);
          rp = input_data<int64_t>(*mask_rows, "mask_rows", rows);
          for (size_t r = 0; r < rows; ++r)  // every row's mask values lie inside the mask
            if (rp[r] < 0 || static_cast<size_t>(rp[r]) > mask_size || mask_size - static_cast<size_t>(rp[r]) < cols)
              throw py::value_error("softmax: mask_rows points outside the mask");
        }
        py::gil_scoped_release release;
        float_ops::softmax(xp, mp, rp, nan_to_zero, op, rows, cols);
      },
      py::arg("x"), py::arg("cols"), py::arg("out"), py::arg("mask") = py::none(), py::arg("mask_rows") = py::none(),
      py::arg("nan_to_zero") = false);
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
