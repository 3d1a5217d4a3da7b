// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::sign_thresholds and fold_sign_thresholds: BatchNorm followed by sign(), folded into one
/// integer comparison per channel on the integer result v of a packed layer, exactly.
///
/// A packed layer computes an integer v per output channel j (a popcount or int8 dot product); the float model
/// computes from it a pre-activation y_j(v) (alpha_j * v for XNOR weights), then BatchNorm's evaluation
/// formula, then sign with sign(0) = +1. Every step is monotone in v -- float rounding is monotone, and
/// BatchNorm multiplies by the one number gamma_j / sqrt(var_j + eps) -- so the set of v that give +1 is
/// {v >= t}, {v < t}, everything or nothing. fold_sign_thresholds finds that set by evaluating the float
/// model itself: it runs a copy of the nn::batch_norm layer (the same compiled code as the model's evaluation
/// forward, so the same rounding and the same fused multiply-adds, whatever -ffp-contract decided) on
/// y_j(v) and binary-searches each channel's boundary over the integers [v_min, v_max]. The comparison then
/// agrees with sign(BN(y_j(v))) for every integer v in that range, ties and negative or zero gamma included;
/// kernels::batch_norm_sign_thresholds computes the same boundary in double arithmetic instead, which can
/// differ where the float BatchNorm rounds to 0.
///
/// @code
/// lowbit::nn::batch_norm<2> bn({.channels = 64});   // trained; its running statistics are what counts
/// std::vector<float> alpha = ...;                    // XNOR scales of the dense layer before it
/// auto const t = lowbit::deploy::fold_sign_thresholds(bn, -256, 256, [&](std::size_t j, std::int64_t v) {
///     return alpha[j] * static_cast<float>(v);         // what the float layer computes for the integer v
/// });
/// bool const plus = t.sign_bit(3, 17);                // sign(BN(alpha_3 * 17)) == +1
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/nn/batch_norm.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace lowbit::deploy {

/// @brief Per-channel sign rules: bit j is (v >= threshold[j]) != (bit j of flip), as kernels::sign_output
/// applies them (bit 1 means +1).
struct sign_thresholds {
    std::vector<std::int32_t> threshold{};  ///< one per channel
    std::vector<std::uint64_t> flip{};      ///< ceil(channels / 64) words; bit j set: +1 below the threshold

    std::size_t size() const noexcept { return threshold.size(); }

    /// @brief The sign bit of channel @p j for the integer result @p v.
    bool sign_bit(std::size_t j, std::int64_t v) const noexcept
    {
        bool const flipped = ((flip[j / 64] >> (j % 64)) & 1u) != 0;
        return (v >= threshold[j]) != flipped;
    }

    /// @brief The kernels' output transform writing these bits into rows of @p ld words at @p data.
    kernels::sign_output output(std::uint64_t* data, std::size_t ld) const noexcept
    {
        return {.data = data, .ld = ld, .threshold = threshold.data(), .flip = flip.data()};
    }
};

/// @brief What fold_sign_thresholds evaluates: y(channel, v), the float pre-activation of channel j for the
/// integer result v, non-decreasing in v.
template <class F>
concept PreActivation = std::invocable<F&, std::size_t, std::int64_t> &&
                        std::convertible_to<std::invoke_result_t<F&, std::size_t, std::int64_t>, float>;

/// @brief The exact sign rules of sign(bn(y(j, v))) (sign(0) = +1) for every integer v in [v_min, v_max]:
/// per channel, a binary search over v of the float BatchNorm in evaluation mode (a copy of @p bn, so its
/// own code and rounding), about log2(v_max - v_min) evaluations of one row of channels.
/// @p y must be non-decreasing in v (a non-negative scale times v, plus constants), which makes the sign
/// monotone: increasing for gamma > 0, decreasing (a flip bit) for gamma < 0, constant for gamma == 0.
/// The BatchNorm may be a dense layer's (rank 2) or a convolution's (rank 4, evaluated on [1, C, 1, 1]: the
/// per-element formula is the same code for both ranks).
/// @throws invalid_input when v_min > v_max or the range leaves (INT32_MIN, INT32_MAX].
template <std::size_t Rank, PreActivation Y>
sign_thresholds fold_sign_thresholds(nn::batch_norm<Rank> const& bn, std::int64_t v_min, std::int64_t v_max, Y&& y)
{
    constexpr std::int64_t lo_limit = std::numeric_limits<std::int32_t>::min();
    constexpr std::int64_t hi_limit = std::numeric_limits<std::int32_t>::max();
    if (v_min > v_max || v_min <= lo_limit || v_max > hi_limit)
        throw invalid_input("lowbit::deploy::fold_sign_thresholds: the integer range [" + std::to_string(v_min) + ", " +
                            std::to_string(v_max) + "] is empty or does not fit int32 thresholds");
    nn::batch_norm<Rank> norm = bn;  // forward() keeps scratch state: evaluate a copy, leave the model alone
    std::size_t const c = norm.options().channels;
    using tensor = typename nn::batch_norm<Rank>::tensor;
    std::array<std::size_t, Rank> shape{};
    shape.fill(1);
    shape[1] = c;
    tensor row = tensor::from_shape(shape);
    std::vector<char> plus(c);
    auto signs = [&](std::vector<std::int64_t> const& v) {
        for (std::size_t j = 0; j < c; ++j) row.data()[j] = static_cast<float>(y(j, v[j]));
        tensor const out = norm.forward(row, {.training = false});
        for (std::size_t j = 0; j < c; ++j) plus[j] = !(out.data()[j] < 0.0f);  // sign(0) = +1, as ste::sign_activation
    };
    std::vector<std::int64_t> lo(c, v_min), hi(c, v_max), mid(c);
    signs(lo);
    std::vector<char> const at_lo = plus;
    signs(hi);
    std::vector<char> const at_hi = plus;
    // Invariant for a channel whose sign changes: lo has the sign of v_min, hi the other one.
    for (bool open = true; open;) {
        open = false;
        for (std::size_t j = 0; j < c; ++j) {
            bool const search = at_lo[j] != at_hi[j] && hi[j] - lo[j] > 1;
            mid[j] = search ? lo[j] + (hi[j] - lo[j]) / 2 : lo[j];
            open = open || search;
        }
        if (!open) break;
        signs(mid);
        for (std::size_t j = 0; j < c; ++j) {
            if (at_lo[j] == at_hi[j] || hi[j] - lo[j] <= 1) continue;
            (plus[j] == at_lo[j] ? lo[j] : hi[j]) = mid[j];
        }
    }
    sign_thresholds t;
    t.threshold.resize(c);
    t.flip.assign(kernels::words_for_bits(c), 0);
    for (std::size_t j = 0; j < c; ++j) {
        bool flipped = false;
        if (at_lo[j] == at_hi[j]) {  // constant: every v passes; flipped, none does
            t.threshold[j] = std::numeric_limits<std::int32_t>::min();
            flipped = !at_hi[j];
        } else {  // hi[j] is the first v with the sign of v_max
            t.threshold[j] = static_cast<std::int32_t>(hi[j]);
            flipped = at_lo[j] != 0;  // +1 below the boundary: gamma < 0
        }
        if (flipped) t.flip[j / 64] |= std::uint64_t{1} << (j % 64);
    }
    return t;
}

} // namespace lowbit::deploy
