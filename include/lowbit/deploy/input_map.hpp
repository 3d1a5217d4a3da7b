// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::input_map: how a packed model turns its float input into the 8-bit codes its first layer
/// multiplies (kernels::int8_gemm takes unsigned 8-bit activations): x = scale * q + offset, q in 0..255,
/// one scale and offset for the whole tensor, fixed when the model is compiled.
///
/// Why per tensor, fixed, and unsigned with an offset: images are 8-bit data to begin with, so a fixed map
/// that puts every pixel value on its own code loses nothing -- Fashion-MNIST's pixels p / 255 are the codes p
/// with scale 1/255, and the standardised pixels of lowbit-train, (p / 255 - mean) / sd, are the codes p with
/// scale 1 / (255 sd) and offset -mean / sd. The first layer then multiplies exactly the input the float model
/// saw (up to the float rounding of that input), and the offset costs nothing at run time: it adds
/// offset * (sum of the weights of channel j), a constant per channel, which folds into the thresholds. A
/// per-batch scale would make a row's result depend on the other rows of its batch, and int8 with a
/// symmetric range would waste the sign bit on non-negative pixels.
///
/// @code
/// lowbit::deploy::input_map const m = lowbit::deploy::input_map::calibrate(images);  // [0, 1]: scale 1/255
/// std::uint8_t const q = m.code(51.0f / 255.0f);                                    // 51
/// @endcode

#include <lowbit/config.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

namespace lowbit::deploy {

/// @brief x = scale * q + offset for the 8-bit input codes q of a packed model.
struct input_map {
    float scale = 1.0f / 255.0f;  ///< the step between codes; positive and finite
    float offset = 0.0f;          ///< the value of code 0

    /// @brief The map of a calibration batch's range: offset = min, scale = (max - min) / 255, so that the
    /// smallest value is code 0 and the largest code 255 (scale 1/255 for a constant batch).
    /// @throws invalid_input for an empty batch or a NaN or infinite value.
    static input_map calibrate(xt::xtensor<float, 2> const& x)
    {
        if (x.size() == 0) throw invalid_input("lowbit::deploy::input_map::calibrate: the calibration batch is empty");
        float lo = std::numeric_limits<float>::infinity(), hi = -lo;
        for (float const v : x) {
            if (!std::isfinite(v))
                throw invalid_input("lowbit::deploy::input_map::calibrate: the calibration batch holds a NaN or "
                                    "infinite value");
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
        input_map m{.scale = hi > lo ? (hi - lo) / 255.0f : 1.0f / 255.0f, .offset = lo};
        m.check();
        return m;
    }

    /// @brief Throws invalid_input unless scale is positive and finite and offset finite.
    void check() const
    {
        if (!(scale > 0.0f) || !std::isfinite(scale) || !std::isfinite(offset))
            throw invalid_input("lowbit::deploy::input_map: scale must be positive and finite and offset finite (got "
                                "scale " + std::to_string(scale) + ", offset " + std::to_string(offset) + ")");
    }

    /// @brief The code of @p x: (x - offset) / scale rounded to nearest (ties to even), clamped to 0..255.
    /// A division rather than a multiplication by 1 / scale, so that x = scale * q + offset computed in float
    /// comes back as q. NaN gives code 0 (forward() rejects NaN input before it gets here).
    std::uint8_t code(float x) const noexcept
    {
        float const t = std::nearbyint((x - offset) / scale);
        return !(t > 0.0f) ? std::uint8_t{0} : t >= 255.0f ? std::uint8_t{255} : static_cast<std::uint8_t>(t);
    }

    /// @brief The codes of @p n values.
    /// @throws invalid_input when a value is NaN (the float model has no class for it either).
    void quantize(float const* x, std::size_t n, std::uint8_t* out) const
    {
        std::size_t nans = 0;
        for (std::size_t i = 0; i < n; ++i) {
            nans += std::isnan(x[i]) ? 1u : 0u;
            out[i] = code(x[i]);
        }
        if (nans != 0)
            throw invalid_input("lowbit::deploy::input_map: " + std::to_string(nans) + " input value(s) are NaN");
    }
};

} // namespace lowbit::deploy
