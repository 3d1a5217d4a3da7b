// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief kernels::changed_codes: how many of the n codes of two bitstreams (pack_codes' layout) differ.
///
/// Training counts weight flips with it (nn::weight::value_changes): the packed weights of SR and R before and
/// after a step. Widths that divide 8 never straddle a byte, so a 64-bit word of the XOR holds whole fields:
/// OR-folding each field onto its lowest bit and counting those bits counts the differing fields, about a
/// thousand codes per microsecond at one bit. Other widths take the field-by-field loop of the reference.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lowbit::kernels {

namespace detail {

/// Field-by-field count: code i is bits [i * bits, (i + 1) * bits) of the stream, least significant bit first.
inline std::size_t changed_codes_reference(std::uint8_t const* a, std::uint8_t const* b, std::size_t n,
                                           int bits) noexcept
{
    std::size_t changed = 0;
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t const first = i * static_cast<std::size_t>(bits);
        bool differs = false;
        for (std::size_t k = first; k < first + static_cast<std::size_t>(bits) && !differs; ++k)
            differs = ((a[k / 8] ^ b[k / 8]) >> (k % 8) & 1u) != 0;
        changed += differs ? 1 : 0;
    }
    return changed;
}

} // namespace detail

/// @brief The number of codes among the first n that differ between the bitstreams a and b, each of
/// packed_bytes(n, bits) bytes, as pack_codes writes them (1 <= bits <= 8). Bits past code n must be equal in
/// both streams (pack_codes leaves them 0).
inline std::size_t changed_codes(std::uint8_t const* a, std::uint8_t const* b, std::size_t n, int bits) noexcept
{
    if (bits != 1 && bits != 2 && bits != 4 && bits != 8) return detail::changed_codes_reference(a, b, n, bits);
    // The lowest bit of each field, repeated over a word.
    std::uint64_t const low = bits == 1 ? ~std::uint64_t{0}
                            : bits == 2 ? 0x5555555555555555u
                            : bits == 4 ? 0x1111111111111111u
                                        : 0x0101010101010101u;
    auto const fold = [&](std::uint64_t x) noexcept {
        for (int s = 1; s < bits; s *= 2) x |= x >> s;  // field's OR lands on its lowest bit (fields are aligned)
        return static_cast<std::size_t>(std::popcount(x & low));
    };
    std::size_t const bytes = (n * static_cast<std::size_t>(bits) + 7) / 8;
    std::size_t changed = 0;
    std::size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        std::uint64_t x = 0, y = 0;
        std::memcpy(&x, a + i, 8);
        std::memcpy(&y, b + i, 8);
        changed += fold(x ^ y);
    }
    for (; i < bytes; ++i) changed += fold(static_cast<std::uint64_t>(a[i] ^ b[i]));
    return changed;
}

} // namespace lowbit::kernels
