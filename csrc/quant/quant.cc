#include "quant/quant.h"

#include <cstdint>
#include <vector>

#include "cpu/kernel_table.h"
#include "parallel/parallel.h"
#include "quant/add.h"
#include "quant/quant_kernels.h"

namespace qk::quant {
namespace {

constexpr KernelTable<QuantKernels> kTable = {
    {Isa::scalar, &scalar::kernels},
    QK_ON_x86_64({Isa::avx2, &avx2::kernels}, {Isa::avx512, &avx512::kernels}, )
    QK_ON_aarch64({Isa::neon, &neon::kernels}, )
};

const QuantKernels& kernels_for(Isa isa) { return kTable.at(isa); }

// Elements per thread chunk: below this, threads cost more than they save.
constexpr size_t kGrain = size_t(1) << 16;
// Outputs larger than this (bytes) are written with non-temporal stores
// where a path supports them: they would only evict the cache (L3 is 8 MiB here).
constexpr size_t kStreamBytes = size_t(16) << 20;
// Channels whose runs are shorter than this get their parameters expanded
// per element, so the kernels still see long runs.
constexpr size_t kMinRun = 64;

// Calls run(offset, count, scale_ptr, zero_point_ptr, per_element) over
// maximal pieces of the tensor that share one parameter source, in parallel.
template <typename Run>
void for_each_run(Layout layout, const float* scale, const float* zp, Run run) {
  const size_t n = layout.size();
  if (n == 0) return;
  if (layout.inner >= kMinRun || layout.channels == 1) {
    const size_t inner = layout.inner, channels = layout.channels;
    parallel_for(n, kGrain, kMinRun, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end;) {
        const size_t r = i / inner, c = r % channels;
        const size_t stop = (r + 1) * inner < end ? (r + 1) * inner : end;
        run(i, stop - i, scale + c, zp + c, false);
        i = stop;
      }
    });
    return;
  }
  // One row of (channels, inner) with each parameter repeated `inner` times.
  const size_t row = layout.channels * layout.inner;
  std::vector<float> scale_row(row), zp_row(row);
  for (size_t c = 0; c < layout.channels; ++c)
    for (size_t k = 0; k < layout.inner; ++k) {
      scale_row[c * layout.inner + k] = scale[c];
      zp_row[c * layout.inner + k] = zp[c];
    }
  parallel_for(n, kGrain, kMinRun, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end;) {
      const size_t offset = i % row;
      const size_t stop = i - offset + row < end ? i - offset + row : end;
      run(i, stop - i, scale_row.data() + offset, zp_row.data() + offset, true);
      i = stop;
    }
  });
}

}  // namespace

Isa selected_isa() { return kTable.select(); }

void quantize(const float* x, void* q, bool q_unsigned, Layout layout, const float* scale,
              const float* zero_point, float qmin, float qmax) {
  const QuantKernels& k = kernels_for(selected_isa());
  auto* bytes = static_cast<uint8_t*>(q);
  for_each_run(layout, scale, zero_point, [&](size_t i, size_t n, const float* s, const float* z, bool pe) {
    k.quantize[q_unsigned][pe](x + i, bytes + i, n, s, z, qmin, qmax);
  });
}

void dequantize(const void* q, bool q_unsigned, float* x, Layout layout, const float* scale,
                const float* zero_point) {
  const QuantKernels& k = kernels_for(selected_isa());
  const auto* bytes = static_cast<const uint8_t*>(q);
  const bool stream = layout.size() * sizeof(float) > kStreamBytes;
  for_each_run(layout, scale, zero_point, [&](size_t i, size_t n, const float* s, const float* z, bool pe) {
    k.dequantize[q_unsigned][pe](bytes + i, x + i, n, s, z, stream);
  });
}

void fake_quantize(const float* x, float* y, Layout layout, const float* scale, const float* zero_point,
                   float qmin, float qmax) {
  const QuantKernels& k = kernels_for(selected_isa());
  const bool stream = layout.size() * sizeof(float) > kStreamBytes;
  for_each_run(layout, scale, zero_point, [&](size_t i, size_t n, const float* s, const float* z, bool pe) {
    k.fake_quantize[pe](x + i, y + i, n, s, z, qmin, qmax, stream);
  });
}

void add_quantized(const uint8_t* a, const uint8_t* b, size_t n, const AddParams& p, uint8_t* out) {
  const QuantKernels& k = kernels_for(selected_isa());
  parallel_for(n, kGrain, 64, [&](size_t begin, size_t end) { k.add(a + begin, b + begin, end - begin, p, out + begin); });
}

}  // namespace qk::quant
