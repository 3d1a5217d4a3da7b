// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Bit widths of packed codes: the numbers lowbit accepts and the message for those it does not.

namespace lowbit {

/// Smallest and largest bit width that lowbit stores as packed codes.
inline constexpr int min_packed_bits = 1;
inline constexpr int max_packed_bits = 8;

/// @brief True when `Bits` can be stored as packed codes (1..8).
template <int Bits>
inline constexpr bool is_packed_bit_width_v = min_packed_bits <= Bits && Bits <= max_packed_bits;

namespace detail {

/// @brief Asserts a packed bit width with a message that says what to use instead.
/// A `requires` clause alone would only print "constraints not satisfied"; a static_assert inside a
/// consteval check lets the diagnostic carry advice (xsimd's style).
template <int Bits>
consteval bool check_packed_bit_width()
{
    static_assert(Bits >= min_packed_bits,
                  "lowbit: a packed bit width must be at least 1; use 1 (binary), 2 (ternary / 2-bit), "
                  "... up to 8 (int8)");
    static_assert(Bits <= max_packed_bits,
                  "lowbit: packed bit widths above 8 are not supported; use 1..8 for packed codes, or keep the "
                  "layer in float (train::full_precision) for wider weights");
    return true;
}

} // namespace detail
} // namespace lowbit
