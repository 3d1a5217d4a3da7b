// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief quantizer<Bits, Rounding, Clipping, Grid, Granularity, Overflow>: the precision of a tensor as a
/// type.
///
/// @code
/// using w1 = lowbit::quantizer<1, lowbit::stochastic_t, lowbit::clip::fixed_range>;     // binary, SR
/// using w2 = lowbit::quantizer<2, lowbit::nearest_even_t, lowbit::clip::l2_optimal>;    // ternary (SQWA)
/// using a4 = lowbit::quantizer<4, lowbit::nearest_even_t, lowbit::clip::fixed_range, lowbit::grid::unsigned_int>;
/// static_assert(lowbit::bit_width_v<w2> == 2);
/// @endcode

#include <lowbit/quant/bit_width.hpp>
#include <lowbit/quant/clipping.hpp>
#include <lowbit/quant/granularity.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/overflow.hpp>
#include <lowbit/quant/quantizer_concepts.hpp>
#include <lowbit/quant/rounding.hpp>

#include <type_traits>

namespace lowbit {

namespace detail {
template <class C>
concept clipping_with_default_grid = requires { typename C::default_grid; };
} // namespace detail

/// @brief The grid a quantizer gets when none is named: the clipping policy's own (`default_grid`, e.g.
/// unsigned for PACT), else binary at 1 bit and the mid-tread symmetric grid otherwise.
template <int Bits, class Clipping>
struct default_grid {
    using type = std::conditional_t<Bits == 1, grid::binary, grid::symmetric_odd>;
};
template <int Bits, detail::clipping_with_default_grid Clipping>
struct default_grid<Bits, Clipping> {
    using type = typename Clipping::default_grid;
};
template <int Bits, class Clipping>
using default_grid_t = typename default_grid<Bits, Clipping>::type;

/// @brief A quantizer. Numbers are template parameters (the bit width), behaviour is tags (rounding, grid,
/// granularity, overflow), and the clipping policy is an object that holds its options or learned state:
/// @code
/// lowbit::quantizer<4, lowbit::nearest_even_t, lowbit::clip::fixed_range> q{.clipping = {.bound = 2.0f}};
/// @endcode
/// @tparam Bits        packed bit width, 1..8 (anything else is a compile error that says what to use)
/// @tparam Rounding    a RoundingPolicy tag: nearest_even_t, nearest_away_t, toward_zero_t, floor_t, ceil_t,
///                     stochastic_t, or a user tag
/// @tparam Clipping    a ClippingPolicy: clip::fixed_range, max_abs, mean_abs, l2_optimal, tanh_max (learned
///                     bounds are ste::pact's and ste::lsq's, which train them)
/// @tparam GridT       a Grid: grid::binary, symmetric_odd, symmetric_even, unsigned_int, signed_int
/// @tparam GranularityT per_tensor_t or per_channel_t
/// @tparam Overflow    saturate_t (default) or wrap_t
template <int Bits, RoundingPolicy Rounding = nearest_even_t, ClippingPolicy Clipping = clip::max_abs,
          Grid GridT = default_grid_t<Bits, Clipping>, Granularity GranularityT = per_tensor_t,
          OverflowPolicy Overflow = saturate_t>
struct quantizer {
    static_assert(detail::check_packed_bit_width<Bits>());

    static constexpr int bits = Bits;
    using rounding_type = Rounding;
    using clipping_type = Clipping;
    using grid_type = GridT;
    using granularity_type = GranularityT;
    using overflow_type = Overflow;

    /// The levels of this quantizer's grid at its bit width (checked at compile time).
    static constexpr level_range levels = GridT::template levels<Bits>();

    Clipping clipping{};  ///< clipping options (the fixed bound, l2_optimal's iterations)
};

} // namespace lowbit
