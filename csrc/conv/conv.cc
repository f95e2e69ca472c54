#include "conv/conv.h"

#include <cstring>
#include <vector>

#include "conv/depthwise_kernels.h"
#include "cpu/kernel_table.h"
#include "gemm/epilogue.h"
#include "parallel/parallel.h"
#include "parallel/scratch.h"

namespace qk::conv {
namespace {

constexpr KernelTable<DepthwiseKernels> kDepthwise = {
    {Isa::scalar, &scalar::kernels},
    QK_ON_x86_64({Isa::avx2, &avx2::kernels}, {Isa::avx512, &avx512::kernels}, )
    QK_ON_aarch64({Isa::neon, &neon::kernels}, )
};

// Bytes of gathered A rows per block: within L2 beside the weights, and
// enough rows for the GEMM to split over the threads.
constexpr size_t kBlockBytes = size_t(1) << 20;

// The input row that kernel row i of output row oy reads, in the image seen
// with its padding (not stored), or `padding` where that row is padding.
const uint8_t* input_row(const uint8_t* image, const Shape& s, size_t oy, size_t i, const uint8_t* padding) {
  const size_t pos = oy * s.stride_h + i * s.dilation_h;
  if (pos < s.pad_top || pos - s.pad_top >= s.height) return padding;
  return image + (pos - s.pad_top) * s.width * s.channels;
}

// n bytes, in fixed-size moves the compiler inlines (a 3-channel kernel row
// is a run of 21 bytes: a libc memcpy call per run cost more than the copy).
// The last move overlaps the previous one instead of looping over a tail.
inline void copy_run(uint8_t* dst, const uint8_t* src, size_t n) {
  if (n >= 16) {
    for (size_t i = 0; i + 16 <= n; i += 16) std::memcpy(dst + i, src + i, 16);
    std::memcpy(dst + n - 16, src + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(dst, src, 8);
    std::memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(dst, src, 4);
    std::memcpy(dst + n - 4, src + n - 4, 4);
  } else {
    for (size_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

// Rows [begin, end) of A for group g into dst (k bytes each, lda apart, the
// bytes between zero): row p is output pixel p's kernel_h * kernel_w taps of
// cg channels, in an image without padding (conv2d pads it first). Without
// groups or dilation, the taps of a kernel row are adjacent whole pixels:
// one run. The pixel's first tap advances with the row (no divisions or
// multiplies per row), and the shape is read into locals once: the byte
// stores could alias it, which made the compiler reload it for every run.
void gather_rows(const uint8_t* x, const Shape& s, size_t begin, size_t end, size_t g, size_t k, size_t lda,
                 uint8_t* dst) {
  static constexpr uint8_t kZeros[64] = {};
  const size_t oh = s.out_h(), ow = s.out_w(), c = s.channels, cg = c / s.groups;
  const size_t kh = s.kernel_h, kw = s.kernel_w, tap_step = s.dilation_w * c;
  const size_t row_step = s.dilation_h * s.width * c;  // from one kernel row to the next
  const size_t pixel_step = s.stride_w * c;            // from one output pixel to the next
  const size_t line_step = s.stride_h * s.width * c;   // from one output row to the next
  const size_t image_bytes = s.height * s.width * c;
  const bool run = s.groups == 1 && s.dilation_w == 1;
  const size_t pad = lda - k;  // at most 63: lda is K aligned to the kernels' step
  size_t b = begin / (oh * ow), oy = begin / ow % oh, ox = begin % ow;
  const uint8_t* line = x + b * image_bytes + oy * line_step + g * cg;  // output row oy's first tap
  const uint8_t* pixel = line + ox * pixel_step;
  for (size_t p = begin; p < end; ++p, dst += lda) {
    uint8_t* out = dst;
    const uint8_t* src = pixel;
    for (size_t i = 0; i < kh; ++i, src += row_step) {
      if (run) {
        copy_run(out, src, kw * cg);
        out += kw * cg;
      } else {
        for (size_t j = 0; j < kw; ++j, out += cg) copy_run(out, src + j * tap_step, cg);
      }
    }
    copy_run(out, kZeros, pad);
    pixel += pixel_step;
    if (++ox == ow) {
      ox = 0;
      line += line_step;
      if (++oy == oh) {
        oy = 0;
        line = x + ++b * image_bytes + g * cg;
      }
      pixel = line;
    }
  }
}

// The shape of the image with its padding stored: the same convolution, unpadded.
Shape padded_shape(const Shape& s) {
  Shape padded = s;
  padded.height = s.height + s.pad_top + s.pad_bottom;
  padded.width = s.width + s.pad_left + s.pad_right;
  padded.pad_top = padded.pad_left = padded.pad_bottom = padded.pad_right = 0;
  return padded;
}

// The image of shape s into `out` (of shape padded_shape(s)), its padding
// filled with the zero point, which the epilogue's zero-point correction
// turns into exact zeros.
void pad_image(const uint8_t* x, const Shape& s, const Shape& padded, uint8_t zp, uint8_t* out) {
  std::memset(out, zp, padded.batch * padded.height * padded.width * padded.channels);
  const size_t row = s.width * s.channels;
  for (size_t b = 0; b < s.batch; ++b)
    for (size_t y = 0; y < s.height; ++y)
      std::memcpy(out + ((b * padded.height + y + s.pad_top) * padded.width + s.pad_left) * s.channels,
                  x + (b * s.height + y) * row, row);
}

// The epilogue of group g: its slice of the per-channel scales and biases.
gemm::Epilogue group_epilogue(const gemm::Epilogue& ep, size_t first_channel) {
  gemm::Epilogue e = ep;
  if (e.scale != nullptr) e.scale += first_channel;
  if (e.bias != nullptr) e.bias += first_channel;
  return e;
}

size_t element_bytes(const gemm::Epilogue& ep) { return ep.kind == gemm::Epilogue::kRequant ? 1 : 4; }

template <gemm::Epilogue::Kind kKind>
void depthwise_rows(const uint8_t* x, const Shape& s, const int16_t* taps, const gemm::Epilogue& ep, void* out,
                    const DepthwiseKernels& k) {
  const size_t oh = s.out_h(), ow = s.out_w(), c = s.channels;
  // Row outputs are independent: split the (image, output row) pairs over threads.
  const size_t rows = s.batch * oh;
  const size_t work = ow * c * s.kernel_h * s.kernel_w;
  parallel_for(rows, work >= (size_t(1) << 16) ? 1 : (size_t(1) << 16) / (work ? work : 1), 1,
               [&](size_t begin, size_t end) {
                 // Room past the last row for the epilogue's whole-vector reads.
                 std::vector<int32_t> sums(ow * c + gemm::kEpilogueColumnAlign);
                 std::vector<const uint8_t*> in_rows(s.kernel_h), tap_pixels(s.kernel_h * s.kernel_w);
                 const std::vector<uint8_t> padding(s.width * c, static_cast<uint8_t>(ep.a_zero_point));
                 // The zero-point correction is already in the sums: no column sums.
                 const gemm::TileWriter<kKind> write{ep, nullptr, 0u, c, out, c};
                 for (size_t r = begin; r < end; ++r) {
                   const size_t b = r / oh, oy = r % oh;
                   const uint8_t* image = x + b * s.height * s.width * c;
                   for (size_t i = 0; i < s.kernel_h; ++i) in_rows[i] = input_row(image, s, oy, i, padding.data());
                   const DepthwiseRow row{in_rows.data(), padding.data(), s.width, c, ow, s.kernel_h, s.kernel_w,
                                          s.stride_w, s.dilation_w, s.pad_left, ep.a_zero_point, taps,
                                          sums.data(), tap_pixels.data()};
                   k.row(row);
                   write(sums.data(), c, ow, r * ow, 0, c);
                 }
               });
}

}  // namespace

Isa depthwise_isa() { return kDepthwise.select(); }

void conv2d(const uint8_t* x, const Shape& s, const gemm::PackedWeight* const* weights, const gemm::Epilogue& ep,
            void* out) {
  const size_t m = s.batch * s.out_h() * s.out_w();
  const size_t cg = s.channels / s.groups, og = s.out_channels / s.groups;
  const size_t k = s.kernel_h * s.kernel_w * cg;
  if (m == 0 || og == 0) return;
  auto* out_bytes = static_cast<char*>(out);
  const size_t esize = element_bytes(ep);
  const bool has_padding = s.pad_top + s.pad_left + s.pad_bottom + s.pad_right > 0;
  const bool direct = s.groups == 1 && s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 &&
                      !has_padding;
  if (direct) return gemm::matmul(x, false, m, k, *weights[0], ep, out);
  const Shape sp = has_padding ? padded_shape(s) : s;
  const Scratch padded(ScratchSlot::kConvImage, has_padding ? sp.batch * sp.height * sp.width * sp.channels : 0);
  if (has_padding) {
    pad_image(x, s, sp, static_cast<uint8_t>(ep.a_zero_point), padded.as<uint8_t>());
    x = padded.as<uint8_t>();
  }
  // Rows at the stride the GEMM reads in place, when it can: no packing.
  const size_t in_place = gemm::in_place_stride(k), lda = in_place ? in_place : k;
  size_t block = k ? kBlockBytes / lda : m;
  block = block < 16 ? 16 : (block > m ? m : block);
  const Scratch rows_buffer(ScratchSlot::kConvRows, block * lda);
  uint8_t* const a = rows_buffer.as<uint8_t>();
  for (size_t g = 0; g < s.groups; ++g) {
    const gemm::Epilogue eg = group_epilogue(ep, g * og);
    for (size_t p0 = 0; p0 < m; p0 += block) {
      const size_t rows = m - p0 < block ? m - p0 : block;
      parallel_for(rows, 256, 1, [&](size_t begin, size_t end) {
        gather_rows(x, sp, p0 + begin, p0 + end, g, k, lda, a + begin * lda);
      });
      gemm::matmul(a, false, rows, k, *weights[g], eg, out_bytes + (p0 * s.out_channels + g * og) * esize,
                   s.out_channels, lda);
    }
  }
}

void depthwise_conv2d(const uint8_t* x, const Shape& s, const int16_t* taps, const gemm::Epilogue& ep, void* out) {
  if (s.batch * s.out_h() * s.out_w() * s.channels == 0) return;
  const DepthwiseKernels& k = kDepthwise.at(depthwise_isa());
  gemm::with_kind(ep.kind, [&](auto kind) { depthwise_rows<decltype(kind)::value>(x, s, taps, ep, out, k); });
}

}  // namespace qk::conv
