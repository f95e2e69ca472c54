#include "bindings/bindings.h"

PYBIND11_MODULE(_qk, m) {
  m.doc() = "qk's compiled kernels (private: use the qk package)";
  m.attr("__version__") = QK_VERSION;
  qk::bindings::bind_cpu(m);
  qk::bindings::bind_quant(m);
  qk::bindings::bind_fp16(m);
  qk::bindings::bind_gemm(m);
  qk::bindings::bind_conv(m);
  qk::bindings::bind_float_ops(m);
  qk::bindings::bind_memory(m);
}
