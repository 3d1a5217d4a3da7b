// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Binary 2-D convolution (cross-correlation, as nn::conv2d) on bit-packed images: im2col into bit
/// rows, then binary_gemm with its fused output transform.
///
/// Layout: an image batch is a bit matrix with one row per pixel in NHWC order (row (n * H + y) * W + x),
/// each row holding the pixel's C channel bits (bit 1 = +1). That is exactly the output of a binary GEMM
/// or convolution with sign_output, so binary layers chain without conversion. Weights are a bit matrix
/// with one row per filter and the patch bits in (ky, kx, c) order (pack_conv_weights_sign converts
/// nn::conv2d's [out, in, k, k] floats). The output has one row per output pixel (NHWC again) and one
/// column per filter.
///
/// Padding semantics: a padded pixel contributes 0, as in nn::conv2d's zero padding, so a network trained
/// with float convolutions on +-1 activations gets the same integer pre-activations. +-1 bits cannot
/// express 0, so im2col writes bit 0 (-1) at padded taps and the GEMM epilogue adds back, per output pixel
/// class and filter, the sum of the filter's +-1 weights over the padded taps: -1 * w contributed, +w added,
/// 0 in total. The class of an output pixel is the set of its valid taps (for a 3x3 kernel with padding 1:
/// interior, 4 edges, 4 corners); the corrections are computed once, with the weights. Larq pads with +1
/// or -1 instead (no correction, but the result then differs from a zero-padded float network); with
/// padding 0 there is a single class and no correction.
///
/// @code
/// using namespace lowbit::kernels;
/// binary_conv2d_shape const s{.channels = 16, .height = 28, .width = 28, .filters = 16, .kernel = 3, .padding = 1};
/// std::vector<std::uint64_t> w(16 * words_for_bits(s.patch_bits()));
/// pack_conv_weights_sign(w_oihw, s, w.data(), words_for_bits(s.patch_bits()));
/// binary_conv2d_weights const wb(s, {w.data(), 16, s.patch_bits(), words_for_bits(s.patch_bits())});
/// binary_conv2d(wb, bit_matrix_view{x_bits, batch * 28 * 28, 16, 1}, batch, int32_output{y.data(), 16});
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/kernels/arch/int_epilogue.hpp>
#include <lowbit/kernels/arch/popcount_gemm.hpp>
#include <lowbit/kernels/arch/popcount_job.hpp>
#include <lowbit/kernels/binary_gemm.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/cpu_features.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::kernels {

/// @brief The geometry of a binary convolution: square kernel, equal stride and zero padding on both axes
/// (nn::conv2d's options).
struct binary_conv2d_shape {
    std::size_t channels = 0;  ///< input channels C
    std::size_t height = 0;    ///< input height H
    std::size_t width = 0;     ///< input width W
    std::size_t filters = 0;   ///< output channels
    std::size_t kernel = 3;
    std::size_t stride = 1;
    std::size_t padding = 0;

    std::size_t out_height() const noexcept { return (height + 2 * padding - kernel) / stride + 1; }
    std::size_t out_width() const noexcept { return (width + 2 * padding - kernel) / stride + 1; }
    std::size_t patch_bits() const noexcept { return kernel * kernel * channels; }
};

/// @brief Binarizes float weights in nn::conv2d's layout [filters][channels][kernel][kernel] (sign, bit 1
/// for w >= 0, as pack_sign_rows) into bit rows of `ld` words with the patch order (ky, kx, c).
inline void pack_conv_weights_sign(float const* w, binary_conv2d_shape const& s, std::uint64_t* out, std::size_t ld) noexcept
{
    std::size_t const k = s.kernel, c = s.channels;
    for (std::size_t f = 0; f < s.filters; ++f) {
        std::uint64_t* row = out + f * ld;
        std::fill(row, row + words_for_bits(s.patch_bits()), std::uint64_t{0});
        for (std::size_t ci = 0; ci < c; ++ci)
            for (std::size_t ky = 0; ky < k; ++ky)
                for (std::size_t kx = 0; kx < k; ++kx) {
                    std::size_t const bit = (ky * k + kx) * c + ci;
                    if (!(w[((f * c + ci) * k + ky) * k + kx] < 0.0f)) row[bit / 64] |= std::uint64_t{1} << (bit % 64);
                }
    }
}

/// @brief Binarizes float images [batch][channels][height][width] (NCHW, as nn::conv2d's input) into NHWC
/// bit rows of `ld` words: row (n * H + y) * W + x holds the signs of the pixel's channels.
inline void pack_images_sign(float const* x, std::size_t batch, std::size_t channels, std::size_t height,
                             std::size_t width, std::uint64_t* out, std::size_t ld) noexcept
{
    std::size_t const plane = height * width;
    for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t p = 0; p < plane; ++p) {
            std::uint64_t* row = out + (n * plane + p) * ld;
            std::fill(row, row + words_for_bits(channels), std::uint64_t{0});
            for (std::size_t c = 0; c < channels; ++c)
                if (!(x[(n * channels + c) * plane + p] < 0.0f)) row[c / 64] |= std::uint64_t{1} << (c % 64);
        }
}

/// @brief The weights of a binary convolution, packed for binary_gemm, with the zero-padding corrections
/// of every output pixel class (see the file comment).
class binary_conv2d_weights {
public:
    binary_conv2d_weights() = default;

    /// @brief `w`: filters x patch_bits bits, patch order (ky, kx, c).
    binary_conv2d_weights(binary_conv2d_shape const& s, bit_matrix_view w) : shape_(s), packed_(w)
    {
        if (s.channels == 0 || s.filters == 0 || s.kernel == 0 || s.stride == 0)
            throw invalid_input("lowbit::kernels::binary_conv2d: channels, filters, kernel and stride must be positive");
        if (s.height + 2 * s.padding < s.kernel || s.width + 2 * s.padding < s.kernel)
            throw invalid_input("lowbit::kernels::binary_conv2d: the input is smaller than the kernel");
        if (w.rows != s.filters || w.cols != s.patch_bits())
            throw invalid_input("lowbit::kernels::binary_conv2d: weights must be filters x kernel^2 * channels bits");
        if (s.padding == 0) return;  // every tap of every output pixel is inside the image
        // Classes: the valid ky range of an output row times the valid kx range of an output column.
        auto ranges = [&](std::size_t in, std::size_t out, std::vector<std::pair<std::size_t, std::size_t>>& unique,
                          std::vector<std::uint32_t>& index) {
            auto const k = static_cast<std::ptrdiff_t>(s.kernel);
            for (std::size_t o = 0; o < out; ++o) {
                // Taps ky with 0 <= o * stride + ky - padding < in; empty when a large padding puts the whole
                // window outside the image.
                auto const start = static_cast<std::ptrdiff_t>(o * s.stride) - static_cast<std::ptrdiff_t>(s.padding);
                std::ptrdiff_t const lo = std::clamp<std::ptrdiff_t>(-start, 0, k);
                std::ptrdiff_t const hi = std::clamp<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(in) - start, lo, k);
                auto const key = std::make_pair(static_cast<std::size_t>(lo), static_cast<std::size_t>(hi));
                auto const it = std::find(unique.begin(), unique.end(), key);
                index.push_back(static_cast<std::uint32_t>(it - unique.begin()));
                if (it == unique.end()) unique.push_back(key);
            }
        };
        std::vector<std::pair<std::size_t, std::size_t>> ys, xs;
        std::vector<std::uint32_t> yi, xi;
        ranges(s.height, s.out_height(), ys, yi);
        ranges(s.width, s.out_width(), xs, xi);
        // Sized once and filled through pointers, as deploy::padding_classes::of (see there).
        std::size_t const oh = s.out_height(), ow = s.out_width();
        auto const columns = static_cast<std::uint32_t>(xs.size());
        row_class_.resize(oh * ow);
        std::uint32_t* out = row_class_.data();
        std::uint32_t const* const x_class = xi.data();
        for (std::size_t oy = 0; oy < oh; ++oy, out += ow) {
            std::uint32_t const row = yi[oy] * columns;
            for (std::size_t ox = 0; ox < ow; ++ox) out[ox] = row + x_class[ox];
        }
        // Per filter and tap: the sum of the +-1 weights over the channels.
        std::size_t const taps = s.kernel * s.kernel;
        std::vector<std::int32_t> tap_sum(s.filters * taps, 0);
        for (std::size_t f = 0; f < s.filters; ++f)
            for (std::size_t t = 0; t < taps; ++t)
                for (std::size_t c = 0; c < s.channels; ++c) tap_sum[f * taps + t] += bit_at(w, f, t * s.channels + c) ? 1 : -1;
        correction_.assign(ys.size() * xs.size() * s.filters, 0);
        for (std::size_t cy = 0; cy < ys.size(); ++cy)
            for (std::size_t cx = 0; cx < xs.size(); ++cx)
                for (std::size_t ky = 0; ky < s.kernel; ++ky)
                    for (std::size_t kx = 0; kx < s.kernel; ++kx) {
                        bool const valid = ky >= ys[cy].first && ky < ys[cy].second && kx >= xs[cx].first && kx < xs[cx].second;
                        if (valid) continue;
                        std::int32_t* corr = correction_.data() + (cy * xs.size() + cx) * s.filters;
                        for (std::size_t f = 0; f < s.filters; ++f) corr[f] += tap_sum[f * taps + ky * s.kernel + kx];
                    }
    }

    binary_conv2d_shape const& shape() const noexcept { return shape_; }
    binary_packed_b const& packed() const noexcept { return packed_; }
    /// @brief [classes][filters] corrections (empty without padding).
    std::vector<std::int32_t> const& corrections() const noexcept { return correction_; }
    /// @brief The class of each output pixel of one image, row-major (empty without padding).
    std::vector<std::uint32_t> const& pixel_classes() const noexcept { return row_class_; }

private:
    binary_conv2d_shape shape_{};
    binary_packed_b packed_;
    std::vector<std::int32_t> correction_;
    std::vector<std::uint32_t> row_class_;
};

namespace detail {

/// ORs the first `bits` bits of `src` into `dst` starting at bit `offset` (dst bits there are zero).
inline void or_bits(std::uint64_t* dst, std::size_t offset, std::uint64_t const* src, std::size_t bits) noexcept
{
    for (std::size_t w = 0; 64 * w < bits; ++w) {
        std::size_t const count = std::min<std::size_t>(64, bits - 64 * w);
        std::uint64_t const v = count == 64 ? src[w] : src[w] & ((std::uint64_t{1} << count) - 1);
        std::size_t const pos = offset + 64 * w;
        unsigned const sh = static_cast<unsigned>(pos % 64);
        dst[pos / 64] |= v << sh;
        if (sh != 0 && sh + count > 64) dst[pos / 64 + 1] |= v >> (64 - sh);
    }
}

/// ORs `bits` bits of `src` starting at bit `from` into `dst` at bit `to` (dst bits there are zero). Reads
/// one word past the last source bit, so sources carry a spare word.
inline void or_field(std::uint64_t* dst, std::size_t to, std::uint64_t const* src, std::size_t from,
                     std::size_t bits) noexcept
{
    for (std::size_t done = 0; done < bits; done += 64) {
        std::size_t const count = std::min<std::size_t>(64, bits - done), at = from + done, put = to + done;
        unsigned const sh = static_cast<unsigned>(at % 64), dsh = static_cast<unsigned>(put % 64);
        std::uint64_t v = src[at / 64] >> sh;
        if (sh != 0) v |= src[at / 64 + 1] << (64 - sh);
        if (count < 64) v &= (std::uint64_t{1} << count) - 1;
        dst[put / 64] |= v << dsh;
        if (dsh != 0 && dsh + count > 64) dst[put / 64 + 1] |= v >> (64 - dsh);
    }
}

/// The padded images as dense bit rows: row (n, py) of the (H + 2p) x (W + 2p) padded image holds its
/// pixels' C bits back to back, zeros for padding, in `row_words` words (one spare for or_field). Then the
/// kernel row ky of output pixel (oy, ox) is one field of kernel * C bits at bit ox * stride * C of padded
/// row oy * stride + ky: im2col copies 3 fields per 3x3 patch instead of 9 pixel rows, with no bounds
/// checks (measured: im2col went from 75 % to 35 % of a 16-channel 28x28 binary convolution).
inline std::size_t dense_row_words(binary_conv2d_shape const& s) noexcept
{
    return words_for_bits((s.width + 2 * s.padding) * s.channels) + 1;
}

inline void binary_dense_rows(binary_conv2d_shape const& s, bit_matrix_view const& x, std::size_t r0, std::size_t r1,
                              std::uint64_t* dense) noexcept
{
    std::size_t const ph = s.height + 2 * s.padding, rw = dense_row_words(s);
    for (std::size_t r = r0; r < r1; ++r) {  // r = n * ph + py
        std::uint64_t* row = dense + r * rw;
        std::fill(row, row + rw, std::uint64_t{0});
        std::size_t const n = r / ph, py = r % ph;
        if (py < s.padding || py - s.padding >= s.height) continue;
        std::uint64_t const* line = x.data + (n * s.height + py - s.padding) * s.width * x.ld;
        for (std::size_t ix = 0; ix < s.width; ++ix)
            or_bits(row, (ix + s.padding) * s.channels, line + ix * x.ld, s.channels);
    }
}

/// im2col straight into the A panels of binary_gemm (popcount_mr(1) output pixels per panel, 32-bit words
/// interleaved), skipping the row-major patch matrix and the second pass that would pack it.
inline void binary_im2col_panels(binary_conv2d_shape const& s, std::uint64_t const* dense, std::size_t m, std::size_t p0,
                                 std::size_t p1, std::uint32_t* panels)
{
    constexpr std::size_t mr = popcount_mr(1);
    std::size_t const oh = s.out_height(), ow = s.out_width(), pixels = oh * ow;
    std::size_t const ph = s.height + 2 * s.padding, rw = dense_row_words(s), field = s.kernel * s.channels;
    std::size_t const kw = popcount_words(s.patch_bits()), words = words_for_bits(s.patch_bits()) + 1;
    std::vector<std::uint64_t> row(words);
    std::uint64_t const fmask = field >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << field) - 1;
    for (std::size_t p = p0; p < p1; ++p) {
        std::uint32_t* dst = panels + p * kw * mr;
        std::size_t i = p * mr, n = i / pixels, oy = i % pixels / ow, ox = i % ow;
        for (std::size_t r = 0; r < mr; ++r, ++i) {
            std::fill(row.begin(), row.end(), std::uint64_t{0});
            if (i < m && field <= 64) {  // each kernel row is one field of at most 64 bits (kernel * C <= 64)
                std::uint64_t const* src = dense + (n * ph + oy * s.stride) * rw;
                std::size_t const from = ox * s.stride * s.channels, w0 = from / 64;
                unsigned const sh = static_cast<unsigned>(from % 64);
                for (std::size_t ky = 0; ky < s.kernel; ++ky, src += rw) {
                    // (x << 1) << (63 - sh) is x << (64 - sh), and 0 for sh = 0 where a shift by 64 is undefined.
                    std::uint64_t const v = ((src[w0] >> sh) | ((src[w0 + 1] << 1) << (63 - sh))) & fmask;
                    std::size_t const to = ky * field;
                    unsigned const dsh = static_cast<unsigned>(to % 64);
                    row[to / 64] |= v << dsh;
                    row[to / 64 + 1] |= (v >> 1) >> (63 - dsh);  // the bits that spill into the next word
                }
            } else if (i < m) {
                for (std::size_t ky = 0; ky < s.kernel; ++ky)
                    or_field(row.data(), ky * field, dense + (n * ph + oy * s.stride + ky) * rw, ox * s.stride * s.channels,
                             field);
            }
            for (std::size_t w = 0; w < kw; ++w) dst[w * mr + r] = static_cast<std::uint32_t>(row[w / 2] >> (32 * (w % 2)));
            if (++ox == ow) {  // next output pixel without divisions
                ox = 0;
                if (++oy == oh) oy = 0, ++n;
            }
        }
    }
}

} // namespace detail

/// @brief Binary convolution of `batch` images (`x`: batch * H * W rows of C bits, NHWC) with the packed
/// weights `w`, through the output transform `out` (rows = batch * out_height * out_width output pixels,
/// columns = filters). Padded pixels contribute 0 (see the file comment). Threaded; runs the `which` path;
/// throws lowbit::invalid_input on a shape mismatch or an unsupported path.
template <IntGemmOutput Output>
void binary_conv2d(binary_conv2d_weights const& w, bit_matrix_view x, std::size_t batch, Output const& out,
                   isa which = best_isa(int_kernel::popcount))
{
    detail::check_isa(which, int_kernel::popcount, "lowbit::kernels::binary_conv2d");
    binary_conv2d_shape const& s = w.shape();
    if (x.cols != s.channels || x.rows != batch * s.height * s.width)
        throw invalid_input("lowbit::kernels::binary_conv2d: input must be batch * height * width rows of " +
                            std::to_string(s.channels) + " channel bits");
    std::size_t const m = batch * s.out_height() * s.out_width();
    if (m == 0) return;
    std::size_t const dense_rows = batch * (s.height + 2 * s.padding), rw = detail::dense_row_words(s);
    thread_local detail::panel_buffer<std::uint64_t> dense_buffer;
    if (dense_buffer.size() < dense_rows * rw) {
        dense_buffer.clear();
        dense_buffer.resize(dense_rows * rw);
    }
    std::uint64_t* dense = dense_buffer.data();
    // Chunks of at least 2^16 words each: waking the pool costs more than copying a small image's rows (at
    // batch 1 a 28x28 convolution took 19.9 us on 2 threads against 14.7 us on 1 before this bound).
    constexpr std::size_t chunk_words = std::size_t{1} << 16;
    parallel_for(dense_rows, std::max<std::size_t>(64, chunk_words / std::max<std::size_t>(rw, 1)),
                 [&](std::size_t begin, std::size_t end) { detail::binary_dense_rows(s, x, begin, end, dense); });
    std::size_t const panels = detail::popcount_a_panels(m, 1);
    std::size_t const panel_words = detail::popcount_words(s.patch_bits()) * detail::popcount_mr(1);
    std::uint32_t* pa = detail::popcount_buffer(0, panels * panel_words);
    parallel_for(panels, std::max<std::size_t>(64, chunk_words / std::max<std::size_t>(panel_words, 1)),
                 [&](std::size_t begin, std::size_t end) {
        detail::binary_im2col_panels(s, dense, m, begin, end, pa);
    });
    detail::int_epilogue e = detail::lower_output(out, s.filters);
    if (!w.corrections().empty()) {
        e.class_offset = w.corrections().data();
        e.row_class = w.pixel_classes().data();
        e.class_period = w.pixel_classes().size();
    }
    detail::binary_gemm_packed(pa, m, w.packed().panels(), s.filters, s.patch_bits(), e, which);
}

} // namespace lowbit::kernels
