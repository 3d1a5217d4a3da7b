// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Scalar references of the plane convolution kernels in kernels/plane_conv.hpp, written to be obviously
/// correct. The SIMD kernels perform the same float operations in the same order, so where the target has a
/// fused multiply-add (`__FMA__`) they are bit-identical to these (tests/kernels/test_plane_conv.cpp).
///
/// A "plane convolution" reads its input through a table of tap offsets: input value t of output position q
/// is `x[off[t] + q]`. For a stride-1 convolution of zero-padded [C, H, W] planes the taps are
/// (ci, ky, kx) with off = (ci * H + ky) * W + kx, and q = oy * W + ox walks the output on the padded grid
/// (columns ox >= W - k + 1 are not outputs of the convolution and are thrown away by the caller). So
/// the whole convolution is the GEMM W [m x taps] times an implicit patch matrix, with no im2col.
///
/// The exact arithmetic:
/// - forward: y(o, q) = acc, acc = 0 then acc = fma(w(o, t), x[off[t] + q], acc) for t = 0, 1, ..., taps-1;
/// - weight gradient: with L lanes, lane l of (o, t) sums q = l, l + L, l + 2L, ... < n in increasing q,
///   s_l = fma(dy(o, q), x[off[t] + q], s_l) from 0; then the lanes are added as a tree, halves first:
///   s_i = s_i + s_{i+h} for i < h, with h = L/2, L/4, ..., 1, and dw(o, t) = s_0 (L a power of two; a
///   tree of depth log2 L rather than a chain of L - 1 dependent adds). L is the SIMD kernel's batch width, a
///   parameter here, so the order is defined for every target.

#include <cmath>
#include <cstddef>

namespace lowbit::kernels::reference {

/// @brief The lanes s[0..lanes) added as a tree, halves first (lanes a power of two; s is overwritten).
inline float lane_tree_sum(float* s, std::size_t lanes) noexcept
{
    for (std::size_t h = lanes / 2; h >= 1; h /= 2)
        for (std::size_t i = 0; i < h; ++i) s[i] += s[i + h];
    return s[0];
}

/// @brief y[o * ldy + q] = sum over t of w[o * ldw + t] * x[off[t] + q], for o < m and q < n (see the file comment).
inline void plane_conv(std::size_t m, std::size_t n, std::size_t taps, std::ptrdiff_t const* off, float const* w,
                       std::size_t ldw, float const* x, float* y, std::size_t ldy) noexcept
{
    for (std::size_t o = 0; o < m; ++o)
        for (std::size_t q = 0; q < n; ++q) {
            float acc = 0.0f;
            for (std::size_t t = 0; t < taps; ++t) acc = std::fma(w[o * ldw + t], x[off[t] + static_cast<std::ptrdiff_t>(q)], acc);
            y[o * ldy + q] = acc;
        }
}

/// @brief dw[o * lddw + t] = sum over q < n of dy[o * lddy + q] * x[off[t] + q], for o < m and t < taps, summed in
/// `lanes` interleaved partial sums (see the file comment).
inline void plane_conv_weight_grad(std::size_t m, std::size_t n, std::size_t taps, std::ptrdiff_t const* off,
                                   float const* dy, std::size_t lddy, float const* x, float* dw, std::size_t lddw,
                                   std::size_t lanes) noexcept
{
    constexpr std::size_t max_lanes = 64;
    float s[max_lanes];
    for (std::size_t o = 0; o < m; ++o)
        for (std::size_t t = 0; t < taps; ++t) {
            for (std::size_t l = 0; l < lanes; ++l) s[l] = 0.0f;
            for (std::size_t q = 0; q < n; ++q)
                s[q % lanes] = std::fma(dy[o * lddy + q], x[off[t] + static_cast<std::ptrdiff_t>(q)], s[q % lanes]);
            dw[o * lddw + t] = lane_tree_sum(s, lanes);
        }
}

} // namespace lowbit::kernels::reference
