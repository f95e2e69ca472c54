// qk's NumPy allocator (memory/array_pool.h) as a NumPy memory handler, and
// the call that makes it current. NumPy's C API is reached through its
// _ARRAY_API table, as pybind11 does, so the build needs no NumPy headers;
// the two layouts below are NumPy's (numpy/ndarraytypes.h, stable since 1.22).
#include "memory/array_pool.h"
#include "bindings/bindings.h"

#include <cstdint>
#include <cstring>

namespace qk::bindings {
namespace {

struct NumpyAllocator {  // PyDataMemAllocator
  void* ctx;
  void* (*malloc)(void* ctx, size_t size);
  void* (*calloc)(void* ctx, size_t count, size_t size);
  void* (*realloc)(void* ctx, void* ptr, size_t size);
  void (*free)(void* ctx, void* ptr, size_t size);
};

struct NumpyHandler {  // PyDataMem_Handler
  char name[127];
  uint8_t version;
  NumpyAllocator allocator;
};

// Slots of NumPy's C API table: PyArray_GetNDArrayCFeatureVersion, PyDataMem_SetHandler.
constexpr int kFeatureVersionSlot = 211, kSetHandlerSlot = 304;
constexpr unsigned kNumpy122FeatureVersion = 0xf;  // the first with memory handlers

NumpyHandler make_handler() {
  NumpyHandler h{};
  std::strncpy(h.name, "qk_array_pool", sizeof h.name - 1);
  h.version = 1;
  h.allocator = {nullptr, [](void*, size_t n) { return pool_malloc(n); },
                 [](void*, size_t count, size_t n) { return pool_calloc(count, n); },
                 [](void*, void* p, size_t n) { return pool_realloc(p, n); }, [](void*, void* p, size_t) { pool_free(p); }};
  return h;
}

using SetHandler = PyObject* (*)(PyObject*);

// PyDataMem_SetHandler, or nullptr when this NumPy has no memory handlers.
SetHandler numpy_set_handler() {
  py::module_ core;
  try {
    core = py::module_::import("numpy._core._multiarray_umath");
  } catch (py::error_already_set&) {
    core = py::module_::import("numpy.core._multiarray_umath");  // NumPy 1.x
  }
  py::capsule api = core.attr("_ARRAY_API");
  void** table = static_cast<void**>(api.get_pointer());
  const auto feature_version = reinterpret_cast<unsigned (*)()>(table[kFeatureVersionSlot])();
  return feature_version >= kNumpy122FeatureVersion ? reinterpret_cast<SetHandler>(table[kSetHandlerSlot]) : nullptr;
}

}  // namespace

void bind_memory(py::module_& m) {
  static NumpyHandler handler = make_handler();
  // Leaked on purpose: every array allocated here holds the capsule, and may outlive the module.
  static PyObject* capsule = py::capsule(&handler, "mem_handler").release().ptr();
  static SetHandler set_handler = numpy_set_handler();

  m.def("array_pool_handler", [] { return py::reinterpret_borrow<py::object>(capsule); });
  m.def("set_numpy_handler", [](py::object h) -> py::object {
    if (set_handler == nullptr) return py::none();
    if (!h.is_none() && !PyCapsule_IsValid(h.ptr(), "mem_handler"))
      throw py::type_error("set_numpy_handler: expected a NumPy memory handler capsule or None");
    PyObject* previous = set_handler(h.is_none() ? nullptr : h.ptr());
    if (previous == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(previous);
  });
  m.def("array_pool_stats", [] {
    const PoolStats s = pool_stats();
    py::dict d;
    d["idle_bytes"] = s.idle_bytes;
    d["limit_bytes"] = s.limit_bytes;
    d["reused"] = s.reused;
    d["fresh"] = s.fresh;
    return d;
  });
  m.def("set_array_pool_limit", [](size_t bytes) { set_pool_limit(bytes); });
}

}  // namespace qk::bindings
