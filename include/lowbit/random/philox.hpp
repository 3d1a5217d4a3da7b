// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Philox4x32-10, the counter-based generator of Salmon et al., "Parallel random numbers: as easy as
/// 1, 2, 3" (SC 2011). A counter-based generator has no sequential state: the draw for element i is a pure
/// function of (seed, step, stream, i). That is what makes stochastic rounding bit-identical for any thread
/// count, any chunking and any SIMD width.

#include <lowbit/detail/gcc12_avx512_warnings.hpp>

#include <xsimd/xsimd.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

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
/// (stream). Elements come in blocks of 64 that use 16 counters: element i takes word (i % 64) / 16 of the
/// Philox output for counter {c low, c high, step, stream} with c = (i / 64) * 16 + i % 16. The layout
/// is fixed (not tied to a SIMD width), and it lets a vector of counters produce 16 consecutive draws
/// per word, stored without a transpose.
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
    std::uint64_t const c = (index >> 6) * 16 + (index & 15);
    philox_block const r = philox4x32_10({static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(c >> 32),
                                          key.step, key.stream},
                                         static_cast<std::uint32_t>(key.seed),
                                         static_cast<std::uint32_t>(key.seed >> 32));
    return to_unit_float(r[(index >> 4) & 3]);
}

LOWBIT_GCC12_AVX512_WARNINGS_OFF  // to LOWBIT_GCC12_AVX512_WARNINGS_ON: GCC PR 105593, see the header

namespace detail {

/// The 32x32 -> 64-bit products Philox needs, lane by lane: each 64-bit lane holds a 32-bit counter word.
/// x86 has this as one instruction (pmuludq); xsimd only offers a full 64-bit multiply, which SSE/AVX2
/// emulate with three, so the x86 paths use the intrinsic on the batch's register.
template <class Arch>
xsimd::batch<std::uint64_t, Arch> mul_wide(xsimd::batch<std::uint64_t, Arch> x, std::uint32_t m) noexcept
{
    using batch = xsimd::batch<std::uint64_t, Arch>;
#if defined(__AVX512F__)
    if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>)
        return batch(_mm512_mul_epu32(x, _mm512_set1_epi64(m)));
    else
#endif
#if defined(__AVX2__)
    if constexpr (std::is_base_of_v<xsimd::avx2, Arch>)
        return batch(_mm256_mul_epu32(x, _mm256_set1_epi64x(m)));
    else
#endif
#if defined(__SSE2__)
    if constexpr (std::is_base_of_v<xsimd::sse2, Arch>)
        return batch(_mm_mul_epu32(x, _mm_set1_epi64x(m)));
    else
#endif
        return x * batch(static_cast<std::uint64_t>(m));
}

} // namespace detail

/// @brief Fills `out[0..n)` with the draws of elements `first .. first + n` of the stream `key`; equal, element
/// for element, to uniform_at. The ten rounds run on xsimd batches of 64-bit lanes, one Philox counter per
/// lane; each block of 64 draws is 16 counters, whose four output words are stored as four runs of 16
/// draws and converted to floats in one contiguous (vectorised) loop.
template <class Arch = xsimd::default_arch>
void uniform_fill(counter_key const& key, std::uint64_t first, float* out, std::size_t n) noexcept
{
    using batch = xsimd::batch<std::uint64_t, Arch>;
    constexpr std::size_t lanes = batch::size;
    static_assert(16 % lanes == 0, "a block's 16 counters must fill whole batches");
    auto const k0 = static_cast<std::uint32_t>(key.seed), k1 = static_cast<std::uint32_t>(key.seed >> 32);
    std::size_t i = 0;
    // Head: single draws until `first + i` starts a block of 64.
    while (i < n && ((first + i) & 63) != 0) { out[i] = uniform_at(key, first + i); ++i; }
    alignas(64) std::uint64_t lane_index[lanes];
    for (std::size_t l = 0; l < lanes; ++l) lane_index[l] = l;
    batch const offsets = batch::load_aligned(lane_index);
    batch const low32(0xFFFFFFFFull);
    alignas(64) std::uint64_t words[64];
    while (n - i >= 64) {
        std::uint64_t const c0 = ((first + i) >> 6) * 16;
        for (std::size_t g = 0; g < 16; g += lanes) {
            batch const c = batch(c0 + g) + offsets;
            batch x0 = c & low32, x1 = c >> 32, x2(static_cast<std::uint64_t>(key.step)),
                  x3(static_cast<std::uint64_t>(key.stream));
            std::uint32_t a = k0, b = k1;
            for (int r = 0; r < 10; ++r) {
                batch const p0 = detail::mul_wide(x0, 0xD2511F53u);
                batch const p1 = detail::mul_wide(x2, 0xCD9E8D57u);
                x0 = (p1 >> 32) ^ x1 ^ batch(static_cast<std::uint64_t>(a));
                x2 = (p0 >> 32) ^ x3 ^ batch(static_cast<std::uint64_t>(b));
                x1 = p1 & low32;
                x3 = p0 & low32;
                a += 0x9E3779B9u;
                b += 0xBB67AE85u;
            }
            x0.store_aligned(words + g);
            x1.store_aligned(words + 16 + g);
            x2.store_aligned(words + 32 + g);
            x3.store_aligned(words + 48 + g);
        }
        for (std::size_t k = 0; k < 64; ++k) out[i + k] = to_unit_float(static_cast<std::uint32_t>(words[k]));
        i += 64;
    }
    for (; i < n; ++i) out[i] = uniform_at(key, first + i);
}

LOWBIT_GCC12_AVX512_WARNINGS_ON

} // namespace lowbit::random
