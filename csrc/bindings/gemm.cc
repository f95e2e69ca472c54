#include "gemm/gemm.h"
#include "bindings/bindings.h"

#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <tuple>

namespace qk::bindings {
namespace {

using gemm::Epilogue;
using gemm::PackedWeight;

// Shared checks of the GEMM entry points: A is (m, k) bytes, out is (m, n).
template <typename Out>
void run(const py::array& a, bool a_signed, size_t m, size_t k, const PackedWeight& w, const Epilogue& ep,
         py::array& out) {
  if (w.k() != k) throw py::value_error("b: K of the packed weight does not match a");
  const void* ap = input_data<uint8_t>(a, "a", product(m, k, "a"));
  void* op = output_data<Out>(out, "out", product(m, w.n(), "out"));
  py::gil_scoped_release release;
  gemm::matmul(ap, a_signed, m, k, w, ep, op);
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("gemm_path", [] { return std::string(isa_name(gemm::selected_isa())); });
  m.def("gemm_blocking", [] {
    const gemm::Blocking b = gemm::blocking();
    py::dict d;
    d["a_block_bytes"] = b.a_block_bytes;
    d["b_run_bytes"] = b.b_run_bytes;
    return d;
  });
  // Test-only: block GEMMs as on a CPU with these caches (bytes); None: the detected ones.
  m.def(
      "set_cache_sizes_for_testing",
      [](const py::object& caches) {
        if (caches.is_none()) return gemm::set_cache_sizes_for_testing(nullptr);
        const auto t = caches.cast<std::tuple<long, long, long>>();
        const CacheSizes c{std::get<0>(t), std::get<1>(t), std::get<2>(t)};
        gemm::set_cache_sizes_for_testing(&c);
      },
      py::arg("caches"));

  py::class_<PackedWeight, std::shared_ptr<PackedWeight>>(m, "PackedWeight")
      .def(py::init([](const py::array& b, size_t k, size_t n) {
             const int8_t* bp = input_data<int8_t>(b, "b", product(k, n, "b"));
             py::gil_scoped_release release;
             return std::make_shared<PackedWeight>(bp, k, n, gemm::selected_layout());
           }),
           py::arg("b"), py::arg("k"), py::arg("n"))
      .def_property_readonly("k", &PackedWeight::k)
      .def_property_readonly("n", &PackedWeight::n)
      .def("unpack", [](const PackedWeight& w) {
        py::array_t<int8_t> b({w.k(), w.n()});
        std::copy(w.original().begin(), w.original().end(), b.mutable_data());
        return b;
      })
      .def("column_sums", [](const PackedWeight& w) {
        py::array_t<int32_t> s(w.n());
        std::copy(w.column_sums().begin(), w.column_sums().end(), s.mutable_data());
        return s;
      });

  // The AMX micro-kernel on the generic driver, int32 out: on the scalar
  // emulation of its intrinsics (every machine: what the tests prove the
  // kernel with), and on the real tiles where the amx path is available,
  // checked against the emulation on first use.
  m.def(
      "amx_int8_matmul",
      [](const py::array& a, bool a_signed, size_t m_rows, size_t k, const PackedWeight& w, py::array& out,
         bool emulated) {
        const gemm::GemmKernels* kernels = &gemm::amx_emulated::kernels;
        if (!emulated) {
          if (!gemm::amx_tiles_available()) throw py::value_error("amx: this machine cannot run AMX tiles");
          static const bool self_test_ok = gemm::amx_self_test();
          if (!self_test_ok) throw std::runtime_error("amx: the tiles disagree with the emulation; path disabled");
#if defined(__x86_64__)
          kernels = &gemm::amx::kernels;
#endif
        }
        if (w.k() != k) throw py::value_error("b: K of the packed weight does not match a");
        const auto* ap = input_data<uint8_t>(a, "a", product(m_rows, k, "a"));
        auto* op = output_data<int32_t>(out, "out", product(m_rows, w.n(), "out"));
        py::gil_scoped_release release;
        gemm::matmul_on(*kernels, ap, a_signed, m_rows, k, w, Epilogue{}, op);
      },
      py::arg("a"), py::arg("a_signed"), py::arg("m"), py::arg("k"), py::arg("w"), py::arg("out"),
      py::arg("emulated"));

  m.def("set_amx_emulation", &gemm::set_amx_emulation, py::arg("on"));

  m.def(
      "int8_matmul",
      [](const py::array& a, bool a_signed, size_t m_rows, size_t k, const PackedWeight& w, py::array& out) {
        run<int32_t>(a, a_signed, m_rows, k, w, Epilogue{}, out);
      },
      py::arg("a"), py::arg("a_signed"), py::arg("m"), py::arg("k"), py::arg("w"), py::arg("out"));

  m.def(
      "quantized_linear",
      [](const py::array& a, bool a_signed, size_t m_rows, size_t k, const PackedWeight& w, int32_t a_zero_point,
         const py::array& scale, const py::object& bias, bool relu, py::array& out, int out_kind, float out_scale,
         float out_zero_point, float qmin, float qmax) {
        Epilogue ep;
        ep.kind = out_kind == 0 ? Epilogue::kFloat : Epilogue::kRequant;
        ep.a_zero_point = a_zero_point;
        ep.scale = input_data<float>(scale, "scale", w.n());
        py::array bias_array;
        if (!bias.is_none()) {
          bias_array = bias.cast<py::array>();
          ep.bias = input_data<float>(bias_array, "bias", w.n());
        }
        ep.relu = relu;
        ep.out_scale = out_scale;
        ep.out_zero_point = out_zero_point;
        ep.qmin = qmin;
        ep.qmax = qmax;
        if (ep.kind == Epilogue::kFloat)
          run<float>(a, a_signed, m_rows, k, w, ep, out);
        else
          run<uint8_t>(a, a_signed, m_rows, k, w, ep, out);
      },
      py::arg("a"), py::arg("a_signed"), py::arg("m"), py::arg("k"), py::arg("w"), py::arg("a_zero_point"),
      py::arg("scale"), py::arg("bias"), py::arg("relu"), py::arg("out"), py::arg("out_kind"),
      py::arg("out_scale"), py::arg("out_zero_point"), py::arg("qmin"), py::arg("qmax"));

  m.def(
      "dynamic_linear",
      [](const py::array& x, size_t m_rows, size_t k, double lo, double hi, const PackedWeight& w,
         const py::array& w_scale, const py::object& bias, bool relu, py::array& out) {
        if (w.k() != k) throw py::value_error("w: K of the packed weight does not match x");
        const float* xp = input_data<float>(x, "x", product(m_rows, k, "x"));
        const float* sp = input_data<float>(w_scale, "w_scale", w.n());
        py::array bias_array;
        const float* bp = nullptr;
        if (!bias.is_none()) {
          bias_array = bias.cast<py::array>();
          bp = input_data<float>(bias_array, "bias", w.n());
        }
        float* op = output_data<float>(out, "out", product(m_rows, w.n(), "out"));
        bool scales_ok;
        {
          py::gil_scoped_release release;
          scales_ok = gemm::dynamic_linear(xp, m_rows, k, lo, hi, w, sp, bp, relu, op);
        }
        if (!scales_ok) throw py::value_error("w_scale: x_scale * w_scale must stay finite and > 0 in float32");
      },
      py::arg("x"), py::arg("m"), py::arg("k"), py::arg("lo"), py::arg("hi"), py::arg("w"), py::arg("w_scale"),
      py::arg("bias"), py::arg("relu"), py::arg("out"));

  m.def(
      "batched_matmul",
      [](const py::array& a, const py::array& b, size_t batch, size_t m_rows, size_t k, size_t n,
         int32_t a_zero_point, float scale, py::array& out) {
        const auto* ap = input_data<uint8_t>(a, "a", product(product(batch, m_rows, "a"), k, "a"));
        const auto* bp = input_data<int8_t>(b, "b", product(product(batch, k, "b"), n, "b"));
        auto* op = output_data<float>(out, "out", product(product(batch, m_rows, "out"), n, "out"));
        py::gil_scoped_release release;
        gemm::batched_matmul(ap, bp, batch, m_rows, k, n, a_zero_point, scale, op);
      },
      py::arg("a"), py::arg("b"), py::arg("batch"), py::arg("m"), py::arg("k"), py::arg("n"),
      py::arg("a_zero_point"), py::arg("scale"), py::arg("out"));
}

}  // namespace qk::bindings
