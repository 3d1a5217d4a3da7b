// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The built-in quantization grids. With `a` the clipping bound from the clipping policy and b
/// the bit width:
///
/// | grid            | levels (real values)                    | step           | b = 2 example        |
/// |-----------------|-----------------------------------------|----------------|----------------------|
/// | binary          | {-a, +a} (b = 1 only)                   | 2a             |                      |
/// | symmetric_odd   | k*step, |k| <= 2^(b-1) - 1 (mid-tread)  | a/(2^(b-1)-1)  | {-a, 0, a} (ternary) |
/// | symmetric_even  | (k+1/2)*step, 2^b levels (mid-rise)     | 2a/(2^b - 1)   | {-a, -a/3, a/3, a}   |
/// | unsigned_int    | k*step, 0 <= k <= 2^b - 1               | a/(2^b - 1)    | {0, a/3, 2a/3, a}    |
/// | signed_int      | k*step, -2^(b-1) <= k <= 2^(b-1) - 1    | a/(2^(b-1)-1)  | {-2a, -a, 0, a}      |
///
/// signed_int is the two's-complement range used by LSQ; there the step is learned directly.

#include <lowbit/quant/bit_width.hpp>
#include <lowbit/quant/grid_concepts.hpp>

namespace lowbit::grid {

/// @brief Mid-rise grid with 2^b levels symmetric around zero (DoReFa weights, Li et al.'s grids).
struct symmetric_even {
    template <int Bits>
    static constexpr level_range levels() noexcept
    {
        static_assert(detail::check_packed_bit_width<Bits>());
        return {-(1 << (Bits - 1)), (1 << (Bits - 1)) - 1, 0.5f};
    }
};

/// @brief Binary grid {-a, +a}: the 1-bit mid-rise grid. With nearest_even, 0 maps to +a, matching
/// BinaryConnect's sign(0) = +1; stochastic rounding gives P(+a) = clip((x/a + 1)/2, 0, 1), the hard
/// sigmoid of stochastic BinaryConnect.
struct binary {
    template <int Bits>
    static constexpr level_range levels() noexcept
    {
        static_assert(Bits == 1, "lowbit: grid::binary holds exactly 1 bit; for 2 or more bits use "
                                 "grid::symmetric_odd (ternary at 2 bits) or grid::symmetric_even");
        return symmetric_even::levels<1>();
    }
};

/// @brief Mid-tread grid symmetric around zero, containing 0 (2 bits = ternary {-a, 0, a}, TWN, SQWA).
struct symmetric_odd {
    template <int Bits>
    static constexpr level_range levels() noexcept
    {
        static_assert(detail::check_packed_bit_width<Bits>());
        static_assert(Bits >= 2, "lowbit: grid::symmetric_odd needs at least 2 bits (2 bits = ternary); "
                                 "for 1 bit use grid::binary");
        return {-((1 << (Bits - 1)) - 1), (1 << (Bits - 1)) - 1, 0.0f};
    }
};

/// @brief Unsigned grid {0, step, ..., (2^b - 1) step} (PACT / DoReFa activations).
struct unsigned_int {
    template <int Bits>
    static constexpr level_range levels() noexcept
    {
        static_assert(detail::check_packed_bit_width<Bits>());
        return {0, (1 << Bits) - 1, 0.0f};
    }
};

/// @brief Signed two's-complement grid {-2^(b-1), ..., 2^(b-1) - 1} * step (LSQ).
struct signed_int {
    template <int Bits>
    static constexpr level_range levels() noexcept
    {
        static_assert(detail::check_packed_bit_width<Bits>());
        static_assert(Bits >= 2, "lowbit: grid::signed_int needs at least 2 bits; for 1 bit use grid::binary");
        return {-(1 << (Bits - 1)), (1 << (Bits - 1)) - 1, 0.0f};
    }
};

} // namespace lowbit::grid
