// Shared helpers for the pybind11 bindings. The Python wrappers in qk/
// validate user input; these checks only guard the C++ kernels against a
// misuse of the private _qk module (a wrong buffer must never be read).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace qk::bindings {

namespace py = pybind11;

// a * b, or a ValueError when it does not fit size_t (sizes passed to the
// private module must never wrap into a small, wrong element count).
inline size_t product(size_t a, size_t b, const char* what) {
  size_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw py::value_error(std::string(what) + ": size overflows");
  return r;
}

template <typename T>
void check_buffer(const py::array& a, const char* name, size_t size) {
  const char kind = a.dtype().kind();
  const bool kind_ok = std::is_floating_point<T>::value ? kind == 'f' : (kind == 'i' || kind == 'u');
  if (!kind_ok || a.dtype().itemsize() != static_cast<py::ssize_t>(sizeof(T)))
    throw py::type_error(std::string(name) + ": wrong dtype for the kernel");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": must be C-contiguous");
  if (size != 0 && reinterpret_cast<uintptr_t>(a.data()) % alignof(T) != 0)
    throw py::value_error(std::string(name) + ": must be aligned to its element size");
  if (static_cast<size_t>(a.size()) != size)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(size) + " elements, got " +
                          std::to_string(a.size()));
}

template <typename T>
const T* input_data(const py::array& a, const char* name, size_t size) {
  check_buffer<T>(a, name, size);
  return static_cast<const T*>(a.data());
}

template <typename T>
T* output_data(py::array& a, const char* name, size_t size) {
  check_buffer<T>(a, name, size);
  if (!a.writeable()) throw py::value_error(std::string(name) + ": is read-only");
  return static_cast<T*>(a.mutable_data());
}

void bind_cpu(py::module_& m);
void bind_quant(py::module_& m);
void bind_fp16(py::module_& m);
void bind_gemm(py::module_& m);
void bind_conv(py::module_& m);
void bind_float_ops(py::module_& m);
void bind_memory(py::module_& m);

}  // namespace qk::bindings
