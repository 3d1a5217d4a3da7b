// SPDX-License-Identifier: MIT
#pragma once
// Test support for packed convolutions: their integer results by plain loops over the taps inside the image
// (zero padding: padded taps contribute nothing), with NCHW inputs and the packed weights' levels.

#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/kernels/binary_conv2d.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit::test {

/// v[(image, oy, ox), j] = sum over the valid taps (ky, kx) and channels c of input(i, c, iy, ix) times the
/// level of weight (j, (ky k + kx) C + c), for @p batch images of convolution @p s; input(i, c, y, x) -> int64.
template <class Input>
std::vector<std::int64_t> conv_loops(kernels::binary_conv2d_shape const& s, deploy::packed_weights const& w,
                                     std::size_t batch, Input input)
{
    std::size_t const oh = s.out_height(), ow = s.out_width();
    std::vector<std::int64_t> v(batch * oh * ow * s.filters, 0);
    for (std::size_t i = 0; i < batch; ++i)
        for (std::size_t oy = 0; oy < oh; ++oy)
            for (std::size_t ox = 0; ox < ow; ++ox)
                for (std::size_t j = 0; j < s.filters; ++j) {
                    std::int64_t sum = 0;
                    for (std::size_t ky = 0; ky < s.kernel; ++ky)
                        for (std::size_t kx = 0; kx < s.kernel; ++kx) {
                            auto const iy = static_cast<std::ptrdiff_t>(oy * s.stride + ky) -
                                            static_cast<std::ptrdiff_t>(s.padding);
                            auto const ix = static_cast<std::ptrdiff_t>(ox * s.stride + kx) -
                                            static_cast<std::ptrdiff_t>(s.padding);
                            if (iy < 0 || ix < 0 || iy >= static_cast<std::ptrdiff_t>(s.height) ||
                                ix >= static_cast<std::ptrdiff_t>(s.width))
                                continue;
                            for (std::size_t c = 0; c < s.channels; ++c)
                                sum += input(i, c, static_cast<std::size_t>(iy), static_cast<std::size_t>(ix)) *
                                       w.level(j, (ky * s.kernel + kx) * s.channels + c);
                        }
                    v[((i * oh + oy) * ow + ox) * s.filters + j] = sum;
                }
    return v;
}

} // namespace lowbit::test
