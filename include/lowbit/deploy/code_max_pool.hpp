// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::code_max_pool: max pooling on k-bit PACT codes. PACT's code is a non-decreasing function of
/// its input (a round(n clip(x, 0, a) / a) / n), so the maximum of a window's codes is the code of the window's
/// maximum: nn::max_pool2d after the activation is a byte-wise maximum of the codes, exactly. Windows as
/// nn::max_pool2d's: kernel x kernel, stride, no padding, windows that do not fit dropped (floor mode).
///
/// @code
/// // 16 channels of 28x28 codes (NHWC rows of 16 bytes) -> 14x14
/// lowbit::deploy::code_max_pool(lowbit::kernels::matrix_view<std::uint8_t>{x, batch * 784, 16, 16}, batch, 28, 28,
///                               {.kernel = 2, .stride = 2}, y, 16);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/pool_window.hpp>
#include <lowbit/kernels/matrix_view.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit::deploy {

/// @brief Max pooling of @p batch images of @p height x @p width pixels of codes (@p x: NHWC rows of x.cols
/// channels) into rows of @p ldy bytes at @p y (NHWC, out(height) x out(width) pixels per image).
/// @throws invalid_input for a zero kernel or stride, a window larger than the image, or a shape mismatch.
inline void code_max_pool(kernels::matrix_view<std::uint8_t> x, std::size_t batch, std::size_t height,
                          std::size_t width, pool_window p, std::uint8_t* y, std::size_t ldy)
{
    std::string const who = "lowbit::deploy::code_max_pool: ";
    p.check(height, width, who);
    if (x.rows != batch * height * width)
        throw invalid_input(who + "shape mismatch: expected " + std::to_string(batch * height * width) +
                            " pixel rows, got " + std::to_string(x.rows));
    if (ldy < x.cols) throw invalid_input(who + "output rows shorter than the channels");
    std::size_t const oh = p.out(height), ow = p.out(width), c = x.cols;
    for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t oy = 0; oy < oh; ++oy)
            for (std::size_t ox = 0; ox < ow; ++ox) {
                std::uint8_t* dst = y + ((n * oh + oy) * ow + ox) * ldy;
                std::fill(dst, dst + c, std::uint8_t{0});  // codes are >= 0
                for (std::size_t ky = 0; ky < p.kernel; ++ky)
                    for (std::size_t kx = 0; kx < p.kernel; ++kx) {
                        std::uint8_t const* src =
                            x.data + ((n * height + oy * p.stride + ky) * width + ox * p.stride + kx) * x.ld;
                        for (std::size_t k = 0; k < c; ++k) dst[k] = std::max(dst[k], src[k]);
                    }
            }
}

} // namespace lowbit::deploy
