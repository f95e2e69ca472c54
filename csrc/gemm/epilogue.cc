#include "cpu/kernel_table.h"
#include "gemm/epilogue_kernels.h"

namespace qk::gemm {
namespace {

constexpr KernelTable<EpilogueKernels> kTable = {
    {Isa::scalar, &scalar::epilogue},
    QK_ON_x86_64({Isa::avx2, &avx2::epilogue}, {Isa::avx512, &avx512::epilogue}, )
    QK_ON_aarch64({Isa::neon, &neon::epilogue}, )
};

}  // namespace

const EpilogueKernels& epilogue_kernels() { return kTable.at(kTable.select()); }

}  // namespace qk::gemm
