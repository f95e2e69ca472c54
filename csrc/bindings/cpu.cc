#include "cpu/isa.h"
#include "parallel/parallel.h"
#include "bindings/bindings.h"

namespace qk::bindings {

void bind_cpu(py::module_& m) {
  // Read QK_ISA and QK_NUM_THREADS now, so a bad value fails the import.
  (void)isa_cap();
  (void)num_threads();

  m.def("cpu_features", [] {
    const CpuFeatures& f = cpu_features();
    py::dict d;
    for (int i = 0; i < f.count; ++i) d[f.items[i].name] = f.items[i].present;
    return d;
  });
  m.def("cache_sizes", [] {
    const CacheSizes& c = cache_sizes();
    py::dict d;
    d["l1d"] = c.l1d;
    d["l2"] = c.l2;
    d["l3"] = c.l3;
    return d;
  });
  m.def("isa_names", [] {
    py::list names;
    for (int i = 0; i < kNumIsas; ++i) names.append(isa_name(static_cast<Isa>(i)));
    return names;
  });
  m.def("isa_supported", [](const std::string& name) {
    Isa isa;
    if (!isa_from_name(name.c_str(), &isa)) throw py::value_error("unknown ISA '" + name + "'");
    return isa_supported(isa);
  });
  m.def("get_isa", [] { return std::string(isa_name(isa_cap())); });
  m.def("set_isa", [](const std::string& name) {
    Isa isa;
    if (!isa_from_name(name.c_str(), &isa) || !isa_supported(isa))
      throw py::value_error("set_isa: '" + name + "' is not available on this machine");
    set_isa_cap(isa);
  });
  m.def("get_num_threads", [] { return num_threads(); });
  m.def("pool_workers", [] { return pool_workers(); });
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("set_num_threads: n must be >= 1");
    set_num_threads(n);
  });
}

}  // namespace qk::bindings
