// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The Quantizer concept: what layers, qtensor and the training methods require of a quantizer.

#include <lowbit/quant/bit_width.hpp>
#include <lowbit/quant/clipping_concepts.hpp>
#include <lowbit/quant/granularity.hpp>
#include <lowbit/quant/grid_concepts.hpp>
#include <lowbit/quant/overflow.hpp>
#include <lowbit/quant/rounding_concepts.hpp>

#include <concepts>

namespace lowbit {

namespace detail {
template <class Q>
concept has_packed_bits = requires {
    { Q::bits } -> std::convertible_to<int>;
} && is_packed_bit_width_v<Q::bits>;
} // namespace detail

/// @brief A quantizer: a packed bit width plus rounding, clipping, grid, granularity and overflow
/// policies, with its clipping state in a member `clipping`. `lowbit::quantizer<...>` models it; a user
/// type with the same members does too.
template <class Q>
concept Quantizer = std::semiregular<Q> && detail::has_packed_bits<Q> &&
                    RoundingPolicy<typename Q::rounding_type> && ClippingPolicy<typename Q::clipping_type> &&
                    Grid<typename Q::grid_type> && Granularity<typename Q::granularity_type> &&
                    OverflowPolicy<typename Q::overflow_type> && requires(Q const& q) {
                        { q.clipping } -> std::convertible_to<typename Q::clipping_type const&>;
                    };

/// @brief A quantizer that rounds stochastically (what stochastic_rounding training requires).
template <class Q>
concept StochasticQuantizer = Quantizer<Q> && StochasticRounding<typename Q::rounding_type>;

/// @brief A quantizer that rounds deterministically (what rounded (R) training requires).
template <class Q>
concept DeterministicQuantizer = Quantizer<Q> && DeterministicRounding<typename Q::rounding_type>;

} // namespace lowbit
