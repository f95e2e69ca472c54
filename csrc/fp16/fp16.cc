#include "fp16/fp16.h"

#include "cpu/kernel_table.h"
#include "fp16/fp16_kernels.h"
#include "parallel/parallel.h"

namespace qk::fp16 {
namespace {

constexpr KernelTable<Fp16Kernels> kTable = {
    {Isa::scalar, &scalar::kernels},
    QK_ON_x86_64({Isa::avx2, &avx2::kernels}, {Isa::avx512, &avx512::kernels}, )
    QK_ON_aarch64({Isa::neon, &neon::kernels}, )
};

const Fp16Kernels& kernels_for(Isa isa) { return kTable.at(isa); }

// Elements per thread chunk: a conversion runs at several elements per
// nanosecond, so below this a thread costs more than it saves.
constexpr size_t kGrain = size_t(1) << 16;
// Chunk starts are multiples of this many elements (whole cache lines on
// both sides), so threads never share a line they write.
constexpr size_t kAlign = 64;
// Outputs at least this big are written with streaming stores: they cannot
// stay in cache, and skipping the read-for-ownership saves bandwidth.
constexpr size_t kStreamBytes = size_t(4) << 20;

template <typename In, typename Out>
void run(void (*fn)(const In*, Out*, size_t, bool), const In* in, Out* out, size_t n) {
  const bool stream = n * sizeof(Out) >= kStreamBytes;
  parallel_for(n, kGrain, kAlign, [&](size_t begin, size_t end) { fn(in + begin, out + begin, end - begin, stream); });
}

}  // namespace

Isa selected_isa() { return kTable.select(); }

void fp32_to_fp16(const float* x, uint16_t* h, size_t n) { run(kernels_for(selected_isa()).f32_to_f16, x, h, n); }
void fp16_to_fp32(const uint16_t* h, float* x, size_t n) { run(kernels_for(selected_isa()).f16_to_f32, h, x, n); }
void fp32_to_bf16(const float* x, uint16_t* b, size_t n) { run(kernels_for(selected_isa()).f32_to_bf16, x, b, n); }
void bf16_to_fp32(const uint16_t* b, float* x, size_t n) { run(kernels_for(selected_isa()).bf16_to_f32, b, x, n); }

}  // namespace qk::fp16
