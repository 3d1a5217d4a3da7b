// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::padding_classes: the output pixels of a zero-padded convolution grouped by which kernel taps
/// fall inside the image. A packed convolution on input codes (deploy::packed_conv2d, deploy::packed_kbit_conv2d)
/// writes code 0 at padded taps, which is not the code of 0.0 unless the input map's offset is 0, so the
/// float model's pre-activation has a term per class, and such a layer has one set of thresholds per class.
///
/// @code
/// lowbit::deploy::padding_classes const c = lowbit::deploy::padding_classes::of(shape);   // 9 for 3x3, pad 1
/// std::uint32_t const k = c.pixel_class[oy * shape.out_width() + ox];
/// bool const inside = c.valid[k].has(ky, kx);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/kernels/binary_conv2d.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief The output pixel classes of a zero-padded convolution: pixels whose windows have the same taps
/// inside the image. Classes are numbered as kernels::binary_conv2d_weights numbers them: the distinct valid
/// kernel-row ranges in order of first appearance (top to bottom) times the distinct valid kernel-column ranges
/// (left to right), class = row index * column ranges + column index. Without padding there is one class.
struct padding_classes {
    /// The valid kernel rows [y0, y1) and columns [x0, x1) of a class.
    struct taps {
        std::size_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;
        bool has(std::size_t ky, std::size_t kx) const noexcept { return ky >= y0 && ky < y1 && kx >= x0 && kx < x1; }
    };
    std::vector<std::uint32_t> pixel_class{};  ///< per output pixel of one image, row-major
    std::vector<taps> valid{};                 ///< per class

    std::size_t count() const noexcept { return valid.size(); }

    /// @brief The classes of the convolution @p s.
    static padding_classes of(kernels::binary_conv2d_shape const& s)
    {
        using range = std::pair<std::size_t, std::size_t>;
        auto ranges = [&](std::size_t in, std::size_t out, std::vector<range>& unique,
                          std::vector<std::uint32_t>& index) {
            auto const k = static_cast<std::ptrdiff_t>(s.kernel);
            for (std::size_t o = 0; o < out; ++o) {
                auto const start = static_cast<std::ptrdiff_t>(o * s.stride) - static_cast<std::ptrdiff_t>(s.padding);
                std::ptrdiff_t const lo = std::clamp<std::ptrdiff_t>(-start, 0, k);
                std::ptrdiff_t const hi = std::clamp<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(in) - start, lo, k);
                range const key{static_cast<std::size_t>(lo), static_cast<std::size_t>(hi)};
                auto const it = std::find(unique.begin(), unique.end(), key);
                index.push_back(static_cast<std::uint32_t>(it - unique.begin()));
                if (it == unique.end()) unique.push_back(key);
            }
        };
        std::vector<range> ys, xs;
        std::vector<std::uint32_t> yi, xi;
        ranges(s.height, s.out_height(), ys, yi);
        ranges(s.width, s.out_width(), xs, xi);
        padding_classes c;
        // Sized once and filled through pointers: this loop is most of the cost of loading a large CNN file, and
        // a push_back and two vector subscripts per pixel made it take minutes in unoptimized sanitizer builds.
        std::size_t const oh = s.out_height(), ow = s.out_width();
        auto const columns = static_cast<std::uint32_t>(xs.size());
        c.pixel_class.resize(oh * ow);
        std::uint32_t* out = c.pixel_class.data();
        std::uint32_t const* const x_class = xi.data();
        for (std::size_t oy = 0; oy < oh; ++oy, out += ow) {
            std::uint32_t const row = yi[oy] * columns;
            for (std::size_t ox = 0; ox < ow; ++ox) out[ox] = row + x_class[ox];
        }
        for (range const& y : ys)
            for (range const& x : xs) c.valid.push_back({y.first, y.second, x.first, x.second});
        return c;
    }
};

} // namespace lowbit::deploy
