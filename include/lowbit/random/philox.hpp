// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Philox4x32-10, the counter-based generator of Salmon et al., "Parallel random numbers: as easy as
/// 1, 2, 3" (SC 2011). A counter-based generator has no sequential state: the draw for element i is a pure
/// function of (seed, step, stream, i). That is what makes stochastic rounding bit-identical for any thread
/// count, any chunking and any SIMD width.

#include <array>
#include <cstddef>
#include <cstdint>

namespace lowbit::random {

/// @brief The four 32-bit words of a Philox counter or result.
using philox_block = std::array<std::uint32_t, 4>;

/// @brief Philox4x32 with 10 rounds: maps a 128-bit counter and a 64-bit key to 128 random bits.
/// Known-answer tests against Random123's published vectors are in tests/unit/random/.
constexpr philox_block philox4x32_10(philox_block ctr, std::uint32_t k0, std::uint32_t k1) noexcept
{
    constexpr std::uint64_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
    constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
    for (int r = 0; r < 10; ++r) {
        std::uint64_t const p0 = m0 * ctr[0];
        std::uint64_t const p1 = m1 * ctr[2];
        ctr = {static_cast<std::uint32_t>(p1 >> 32) ^ ctr[1] ^ k0, static_cast<std::uint32_t>(p1),
               static_cast<std::uint32_t>(p0 >> 32) ^ ctr[3] ^ k1, static_cast<std::uint32_t>(p0)};
        k0 += w0;
        k1 += w1;
    }
    return ctr;
}

/// @brief The key of a stream of uniform draws: which run (seed), which training step and which tensor
/// (stream). Element i of the stream is word i % 4 of philox(counter = {i/4 low, i/4 high, step, stream}).
struct counter_key {
    std::uint64_t seed = 0;    ///< run seed
    std::uint32_t step = 0;    ///< training step (or any epoch-like counter)
    std::uint32_t stream = 0;  ///< tensor id: different tensors get independent draws
};

/// @brief Converts 32 random bits to a float uniform on [0, 1) with 24 random bits (exact in float).
constexpr float to_unit_float(std::uint32_t bits) noexcept
{
    return static_cast<float>(bits >> 8) * 0x1p-24f;
}

/// @brief The uniform draw for element `index` of the stream `key`.
constexpr float uniform_at(counter_key const& key, std::uint64_t index) noexcept
{
    std::uint64_t const c = index >> 2;
    philox_block const r = philox4x32_10({static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(c >> 32),
                                          key.step, key.stream},
                                         static_cast<std::uint32_t>(key.seed),
                                         static_cast<std::uint32_t>(key.seed >> 32));
    return to_unit_float(r[index & 3]);
}

/// @brief Fills `out[0..n)` with the draws of elements `first .. first + n` of the stream `key`; equal, element
/// for element, to uniform_at. The rounds run over a block of counters at a time, lane by lane, so that the
/// compiler vectorises the 32x32->64-bit multiplies (vpmuludq) across counters.
inline void uniform_fill(counter_key const& key, std::uint64_t first, float* out, std::size_t n) noexcept
{
    constexpr std::size_t lanes = 16;
    auto const k0 = static_cast<std::uint32_t>(key.seed), k1 = static_cast<std::uint32_t>(key.seed >> 32);
    std::size_t i = 0;
    // Head: elements until `first + i` is a multiple of 4, so blocks cover whole counters.
    while (i < n && ((first + i) & 3) != 0) { out[i] = uniform_at(key, first + i); ++i; }
    while (n - i >= 4 * lanes) {
        std::uint64_t const c0 = (first + i) >> 2;
        std::uint32_t x0[lanes], x1[lanes], x2[lanes], x3[lanes];
        for (std::size_t l = 0; l < lanes; ++l) {
            std::uint64_t const c = c0 + l;
            x0[l] = static_cast<std::uint32_t>(c);
            x1[l] = static_cast<std::uint32_t>(c >> 32);
            x2[l] = key.step;
            x3[l] = key.stream;
        }
        std::uint32_t a = k0, b = k1;
        for (int r = 0; r < 10; ++r) {
            for (std::size_t l = 0; l < lanes; ++l) {
                std::uint64_t const p0 = std::uint64_t{0xD2511F53u} * x0[l];
                std::uint64_t const p1 = std::uint64_t{0xCD9E8D57u} * x2[l];
                std::uint32_t const y0 = static_cast<std::uint32_t>(p1 >> 32) ^ x1[l] ^ a;
                std::uint32_t const y2 = static_cast<std::uint32_t>(p0 >> 32) ^ x3[l] ^ b;
                x1[l] = static_cast<std::uint32_t>(p1);
                x3[l] = static_cast<std::uint32_t>(p0);
                x0[l] = y0;
                x2[l] = y2;
            }
            a += 0x9E3779B9u;
            b += 0xBB67AE85u;
        }
        for (std::size_t l = 0; l < lanes; ++l) {
            out[i + 4 * l + 0] = to_unit_float(x0[l]);
            out[i + 4 * l + 1] = to_unit_float(x1[l]);
            out[i + 4 * l + 2] = to_unit_float(x2[l]);
            out[i + 4 * l + 3] = to_unit_float(x3[l]);
        }
        i += 4 * lanes;
    }
    for (; i < n; ++i) out[i] = uniform_at(key, first + i);
}

} // namespace lowbit::random
