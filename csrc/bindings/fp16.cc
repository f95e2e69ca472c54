#include "fp16/fp16.h"
#include "bindings/bindings.h"

#include <cstdint>

namespace qk::bindings {
namespace {

// 16-bit elements travel as raw bits: float16 (half) or uint16 (bfloat16)
// arrays are both accepted; 32-bit elements must be float32. Pointers must be
// element-aligned.
template <typename T>
void check_elements(const py::array& a, const char* name, size_t size) {
  const bool half_bits = std::is_same<T, uint16_t>::value && a.dtype().kind() == 'f' && a.dtype().itemsize() == 2;
  if (!half_bits) check_buffer<T>(a, name, size);
  else if (!(a.flags() & py::array::c_style) || static_cast<size_t>(a.size()) != size)
    throw py::value_error(std::string(name) + ": must be C-contiguous with " + std::to_string(size) + " elements");
  if (size != 0 && reinterpret_cast<uintptr_t>(a.data()) % alignof(T) != 0)
    throw py::value_error(std::string(name) + ": must be aligned");
}

// Binds a converter from `In` elements to `Out` elements, both passed as
// C-contiguous, element-aligned arrays of the same size (the Python wrapper
// checks dtypes and shapes).
template <typename In, typename Out>
void bind_convert(py::module_& m, const char* name, const char* in_name,
                  void (*convert)(const In*, Out*, size_t)) {
  m.def(
      name,
      [convert, in_name](const py::array& in, py::array& out) {
        const size_t n = static_cast<size_t>(in.size());
        check_elements<In>(in, in_name, n);
        check_elements<Out>(out, "out", n);
        if (!out.writeable()) throw py::value_error("out: is read-only");
        const In* ip = static_cast<const In*>(in.data());
        Out* op = static_cast<Out*>(out.mutable_data());
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
