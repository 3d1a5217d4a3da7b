// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::sign_max_pool: max pooling on sign bits. With sign activations a feature map holds +-1 only,
/// and bit 1 means +1 (the kernels' convention: sign_output writes bit 1 for v >= threshold, i.e. +1), so the
/// maximum of a window is +1 exactly when one of its bits is 1: a bitwise OR of the window's pixel rows, all
/// channels of a word at once. nn::max_pool2d's windows: kernel x kernel, stride, no padding, windows that do
/// not fit dropped (floor mode).
///
/// @code
/// // 16 channels of 28x28 (NHWC rows of one word) -> 14x14
/// lowbit::deploy::sign_max_pool(lowbit::kernels::bit_matrix_view{x, batch * 784, 16, 1}, batch, 28, 28,
///                               {.kernel = 2, .stride = 2}, y, 1);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/pool_window.hpp>
#include <lowbit/kernels/bit_matrix.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit::deploy {

/// @brief Max pooling of @p batch images of @p height x @p width pixels of sign bits (@p x: NHWC rows of
/// x.cols channel bits) into rows of @p ldy words at @p y (NHWC, out(height) x out(width) pixels per image).
/// @throws invalid_input for a zero kernel or stride, a window larger than the image, or a shape mismatch.
inline void sign_max_pool(kernels::bit_matrix_view x, std::size_t batch, std::size_t height, std::size_t width,
                          pool_window p, std::uint64_t* y, std::size_t ldy)
{
    std::string const who = "lowbit::deploy::sign_max_pool: ";
    p.check(height, width, who);
    if (x.rows != batch * height * width)
        throw invalid_input(who + "shape mismatch: expected " + std::to_string(batch * height * width) +
                            " pixel rows, got " + std::to_string(x.rows));
    std::size_t const words = kernels::words_for_bits(x.cols);
    if (ldy < words) throw invalid_input(who + "output rows shorter than the channels' words");
    std::size_t const oh = p.out(height), ow = p.out(width);
    for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t oy = 0; oy < oh; ++oy)
            for (std::size_t ox = 0; ox < ow; ++ox) {
                std::uint64_t* dst = y + ((n * oh + oy) * ow + ox) * ldy;
                std::fill(dst, dst + words, std::uint64_t{0});
                for (std::size_t ky = 0; ky < p.kernel; ++ky)
                    for (std::size_t kx = 0; kx < p.kernel; ++kx) {
                        std::uint64_t const* src =
                            x.data + ((n * height + oy * p.stride + ky) * width + ox * p.stride + kx) * x.ld;
                        for (std::size_t w = 0; w < words; ++w) dst[w] |= src[w];  // max of +-1 = OR of the bits
                    }
            }
}

} // namespace lowbit::deploy
