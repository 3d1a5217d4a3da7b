// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The integer results of a convolution on 8-bit codes, shared by the packed convolutions that read
/// codes (deploy::packed_conv2d's first layer, deploy::packed_kbit_conv2d): im2col of NHWC code rows, with code
/// 0 at padded taps, then kernels::int8_gemm (u8 codes x s8 weights, exact int32).
///
/// | weights        | int8_gemm operand | v                    |
/// |----------------|-------------------|----------------------|
/// | binary s = +-1 | +-1               | sum_taps q s         |
/// | levels 2c + 1  | c (s8)            | 2 sum q c + sum q    |
///
/// Padded taps are code 0 in both sums, so v sums the valid taps only.

#include <lowbit/config.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/kernels/binary_conv2d.hpp>
#include <lowbit/kernels/int8_gemm.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/kernels/matrix_view.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace lowbit::deploy::detail {

/// The int8 kernel's packed weights of @p w (rows: filters, columns: the patch in (ky, kx, c) order).
inline kernels::int8_packed_b int8_weights(packed_weights const& w)
{
    if (w.binary()) return kernels::int8_packed_b(kernels::bit_matrix_view{w.signs.data(), w.out, w.in, w.words()});
    return kernels::int8_packed_b(kernels::matrix_view<std::int8_t>{w.codes.data(), w.out, w.in, w.in});
}

/// Throws unless @p w is a valid weight matrix for 8-bit code inputs (packed_weights::check) whose integer
/// sums stay in int32: inputs are at most 255, so |v| <= 255 * max level * in, and the int8 kernel's sum of
/// q c and its double stay below 255 * 2^bits * in.
inline void check_code_weights(packed_weights const& w, std::string const& who)
{
    w.check(who);
    std::int64_t const largest = w.binary() ? 1 : std::int64_t{1} << w.bits;
    if (static_cast<double>(255 * largest) * static_cast<double>(w.in) >=
        static_cast<double>(std::numeric_limits<std::int32_t>::max() - 1))
        throw invalid_input(who + std::to_string(w.in) + " inputs of " + std::to_string(w.bits) +
                            "-bit weights could overflow the int32 sums");
}

/// Throws invalid_input, prefixed by @p who, unless @p s is a convolution with positive sizes whose padded
/// input fits its kernel, and @p w has one row per filter of kernel^2 * channels taps.
inline void check_conv_geometry(std::string const& who, kernels::binary_conv2d_shape const& s, packed_weights const& w)
{
    if (s.channels == 0 || s.filters == 0 || s.kernel == 0 || s.stride == 0 || s.height == 0 || s.width == 0)
        throw invalid_input(who + "channels, height, width, filters, kernel and stride must be positive");
    if (s.height + 2 * s.padding < s.kernel || s.width + 2 * s.padding < s.kernel)
        throw invalid_input(who + "the " + std::to_string(s.height) + "x" + std::to_string(s.width) +
                            " input is smaller than the " + std::to_string(s.kernel) + "x" + std::to_string(s.kernel) +
                            " kernel");
    if (w.in != s.patch_bits() || w.out != s.filters)
        throw invalid_input(who + "weights of " + std::to_string(w.out) + " x " + std::to_string(w.in) + " for " +
                            std::to_string(s.filters) + " filters of " + std::to_string(s.patch_bits()) +
                            " taps (kernel^2 * channels)");
}

/// im2col of images n0 .. n0 + n - 1 of @p x (NHWC rows of s.channels codes) into @p a: one row of
/// s.patch_bits() codes per output pixel, (ky, kx, c) order, code 0 at padded taps.
inline void code_im2col(kernels::binary_conv2d_shape const& s, kernels::matrix_view<std::uint8_t> const& x,
                        std::size_t n0, std::size_t n, std::uint8_t* a)
{
    std::size_t const patch = s.patch_bits(), oh = s.out_height(), ow = s.out_width();
    auto const pad = static_cast<std::ptrdiff_t>(s.padding);
    std::fill(a, a + n * oh * ow * patch, std::uint8_t{0});
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t oy = 0; oy < oh; ++oy)
            for (std::size_t ox = 0; ox < ow; ++ox) {
                std::uint8_t* row = a + ((i * oh + oy) * ow + ox) * patch;
                for (std::size_t ky = 0; ky < s.kernel; ++ky) {
                    auto const iy = static_cast<std::ptrdiff_t>(oy * s.stride + ky) - pad;
                    if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(s.height)) continue;
                    for (std::size_t kx = 0; kx < s.kernel; ++kx) {
                        auto const ix = static_cast<std::ptrdiff_t>(ox * s.stride + kx) - pad;
                        if (ix < 0 || ix >= static_cast<std::ptrdiff_t>(s.width)) continue;
                        std::uint8_t const* src = x.data + (((n0 + i) * s.height + static_cast<std::size_t>(iy)) *
                                                                s.width + static_cast<std::size_t>(ix)) * x.ld;
                        std::copy(src, src + s.channels, row + (ky * s.kernel + kx) * s.channels);
                    }
                }
            }
}

/// v (rows of s.filters int32) of images n0 .. n0 + n - 1 of input codes @p x; @p a is scratch space that
/// grows to n * out pixels * patch bytes.
inline void code_conv_integers(kernels::binary_conv2d_shape const& s, packed_weights const& w,
                               kernels::int8_packed_b const& i8, kernels::matrix_view<std::uint8_t> const& x,
                               std::size_t n0, std::size_t n, std::vector<std::uint8_t>& a, std::int32_t* v)
{
    std::size_t const patch = s.patch_bits(), rows = n * s.out_height() * s.out_width();
    if (a.size() < rows * patch) a.resize(rows * patch);
    code_im2col(s, x, n0, n, a.data());
    kernels::int8_gemm(kernels::matrix_view<std::uint8_t>{a.data(), rows, patch, patch}, i8,
                       kernels::int32_output{v, s.filters});
    if (!w.odd_levels()) return;  // +-1 or integer levels: v = sum q c
    // Odd levels 2c + 1: v = 2 sum q c + sum q.
    for (std::size_t r = 0; r < rows; ++r) {
        std::int32_t sum = 0;
        std::uint8_t const* q = a.data() + r * patch;
        for (std::size_t k = 0; k < patch; ++k) sum += q[k];
        std::int32_t* vr = v + r * s.filters;
        for (std::size_t j = 0; j < s.filters; ++j) vr[j] = 2 * vr[j] + sum;
    }
}

} // namespace lowbit::deploy::detail
