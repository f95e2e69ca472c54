// Layout changes at the edges of an integer chain: a float model's NCHW
// activations quantized to uint8 enter the NHWC convolutions, and float NHWC
// outputs leave for NCHW readers. Baseline code; blocked so both sides stream
// (NumPy's strided copy of a 3-channel image ran at a tenth of memory speed).
#pragma once

#include <cstddef>
#include <cstdint>

namespace qk::conv {

// x (batch, channels, pixels) -> out (batch, pixels, channels), and back.
void nchw_to_nhwc(const uint8_t* x, size_t batch, size_t channels, size_t pixels, uint8_t* out);
void nhwc_to_nchw(const float* x, size_t batch, size_t pixels, size_t channels, float* out);

}  // namespace qk::conv
