// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Scalar reference of kernels/binary_conv2d.hpp: a direct convolution over +-1 values with zero
/// padding (a padded tap is skipped, i.e. contributes 0), no im2col and no popcount.

#include <lowbit/kernels/binary_conv2d.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/kernels/reference/int_gemm_output.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit::kernels::reference {

/// @brief y(n, oy, ox, f) = sum over taps inside the image and channels of x * w (+-1 each), written
/// through `out` with rows (n * out_height + oy) * out_width + ox. `x`: NHWC bit rows, `w`: filters x
/// kernel^2 * channels bits in (ky, kx, c) order.
template <IntGemmOutput Output>
void binary_conv2d(binary_conv2d_shape const& s, bit_matrix_view const& w, bit_matrix_view const& x, std::size_t batch,
                   Output const& out)
{
    std::size_t const oh = s.out_height(), ow = s.out_width(), m = batch * oh * ow;
    std::vector<std::int32_t> v(m * s.filters);
    for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t oy = 0; oy < oh; ++oy)
            for (std::size_t ox = 0; ox < ow; ++ox)
                for (std::size_t f = 0; f < s.filters; ++f) {
                    std::int32_t acc = 0;
                    for (std::size_t ky = 0; ky < s.kernel; ++ky)
                        for (std::size_t kx = 0; kx < s.kernel; ++kx) {
                            auto const iy = static_cast<std::ptrdiff_t>(oy * s.stride + ky) - static_cast<std::ptrdiff_t>(s.padding);
                            auto const ix = static_cast<std::ptrdiff_t>(ox * s.stride + kx) - static_cast<std::ptrdiff_t>(s.padding);
                            if (iy < 0 || ix < 0 || iy >= static_cast<std::ptrdiff_t>(s.height) ||
                                ix >= static_cast<std::ptrdiff_t>(s.width))
                                continue;  // zero padding
                            std::size_t const pixel = (n * s.height + static_cast<std::size_t>(iy)) * s.width + static_cast<std::size_t>(ix);
                            for (std::size_t c = 0; c < s.channels; ++c) {
                                int const a = bit_at(x, pixel, c) ? 1 : -1;
                                int const b = bit_at(w, f, (ky * s.kernel + kx) * s.channels + c) ? 1 : -1;
                                acc += a * b;
                            }
                        }
                    v[((n * oh + oy) * ow + ox) * s.filters + f] = acc;
                }
    write_output(v.data(), m, s.filters, out);
}

} // namespace lowbit::kernels::reference
