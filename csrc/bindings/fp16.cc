#include "fp16/fp16.h"
#include "bindings/bindings.h"

#include <cstdint>

namespace qk::bindings {
namespace {

// Binds a converter from `In` elements to `Out` elements, both passed as
// C-contiguous arrays of the same size (the Python wrapper checks dtypes).
template <typename In, typename Out>
void bind_convert(py::module_& m, const char* name, const char* in_name,
                  void (*convert)(const In*, Out*, size_t)) {
  m.def(
      name,
      [convert, in_name](const py::array& in, py::array& out) {
        const size_t n = static_cast<size_t>(in.size());
        const In* ip = input_data<In>(in, in_name, n);
        Out* op = output_data<Out>(out, "out", n);
        py::gil_scoped_release release;
        convert(ip, op, n);
      },
      py::arg(in_name), py::arg("out"));
}

}  // namespace

void bind_fp16(py::module_& m) {
  m.def("fp16_path", [] { return std::string(isa_name(fp16::selected_isa())); });
  bind_convert<float, uint16_t>(m, "fp32_to_fp16", "x", fp16::fp32_to_fp16);
  bind_convert<uint16_t, float>(m, "fp16_to_fp32", "h", fp16::fp16_to_fp32);
  bind_convert<float, uint16_t>(m, "fp32_to_bf16", "x", fp16::fp32_to_bf16);
  bind_convert<uint16_t, float>(m, "bf16_to_fp32", "b", fp16::bf16_to_fp32);
}

}  // namespace qk::bindings
