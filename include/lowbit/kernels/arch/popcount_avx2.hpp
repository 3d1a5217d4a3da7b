// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The AVX2 path of the popcount GEMMs. AVX2 has no vector popcount, so each byte is counted with
/// two 16-entry table lookups (vpshufb on the low and on the high nibble, the "nibble LUT"): 8 instructions
/// per 256 bits including the xor/and and the accumulation, against 3 per 512 bits with AVX-512 VPOPCNTDQ.
///
/// Counts accumulate per byte: one word adds at most 8 to a byte, so 31 words fit (248 < 256) before the
/// four bytes of each 32-bit lane (one output column in the panel layout of arch/popcount_job.hpp) are
/// summed with vpmaddubsw and vpmaddwd against ones into int32 sums. A subtile is up to 4 bit rows by one
/// 16-column panel (two 8-column halves): 8 byte accumulators, 2 B vectors, the broadcast A word, the table,
/// the nibble mask and temporaries fit AVX2's 16 registers.
// IWYU pragma: private

#include <lowbit/kernels/arch/int_epilogue.hpp>
#include <lowbit/kernels/arch/popcount_job.hpp>
#include <lowbit/kernels/arch/targets.hpp>
#include <lowbit/kernels/arch/tile_tasks.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#if LOWBIT_X86_DISPATCH
#include <immintrin.h>

namespace lowbit::kernels::detail::avx2 {

/// Popcount sums of R bit rows (a, panel stride mr) against one B panel over kw words, into sum[r][half]
/// (8 columns of int32 sums per half).
template <int R, bool Xor>
[[LOWBIT_TARGET_AVX2_POPCNT, gnu::always_inline]] inline void popcount_subtile(std::size_t kw, std::uint32_t const* a,
                                                                                   std::size_t mr, std::uint32_t const* b,
                                                                                   __m256i (&sum)[4][2]) noexcept
{
    __m256i const lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3,
                                         2, 3, 3, 4);
    __m256i const low = _mm256_set1_epi8(0x0f);
    __m256i const ones8 = _mm256_set1_epi8(1);
    __m256i const ones16 = _mm256_set1_epi16(1);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) sum[r][0] = sum[r][1] = _mm256_setzero_si256();
    for (std::size_t w0 = 0; w0 < kw; w0 += 31) {
        std::size_t const w1 = std::min(kw, w0 + 31);
        __m256i cnt[R][2];
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) cnt[r][0] = cnt[r][1] = _mm256_setzero_si256();
        for (std::size_t w = w0; w < w1; ++w) {
            __m256i const bv[2] = {_mm256_loadu_si256(reinterpret_cast<__m256i const*>(b + w * popcount_nr)),
                                   _mm256_loadu_si256(reinterpret_cast<__m256i const*>(b + w * popcount_nr + 8))};
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r) {
                __m256i const av = _mm256_set1_epi32(static_cast<int>(a[w * mr + static_cast<std::size_t>(r)]));
#pragma GCC unroll 2
                for (int h = 0; h < 2; ++h) {
                    __m256i const x = Xor ? _mm256_xor_si256(av, bv[h]) : _mm256_and_si256(av, bv[h]);
                    __m256i const lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(x, low));
                    __m256i const hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
                    cnt[r][h] = _mm256_add_epi8(cnt[r][h], _mm256_add_epi8(lo, hi));
                }
            }
        }
        // Byte counts (<= 248) -> pairs (vpmaddubsw, <= 496) -> the 4 bytes of each 32-bit lane (vpmaddwd).
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h)
                sum[r][h] = _mm256_add_epi32(sum[r][h], _mm256_madd_epi16(_mm256_maddubs_epi16(cnt[r][h], ones8), ones16));
    }
}

template <bool Xor>
[[LOWBIT_TARGET_AVX2_POPCNT, gnu::always_inline]] inline void popcount_subtile_any(int rows, std::size_t kw,
                                                                                       std::uint32_t const* a, std::size_t mr,
                                                                                       std::uint32_t const* b,
                                                                                       __m256i (&sum)[4][2]) noexcept
{
    switch (rows) {
    case 1: popcount_subtile<1, Xor>(kw, a, mr, b, sum); break;
    case 2: popcount_subtile<2, Xor>(kw, a, mr, b, sum); break;
    case 3: popcount_subtile<3, Xor>(kw, a, mr, b, sum); break;
    default: popcount_subtile<4, Xor>(kw, a, mr, b, sum); break;
    }
}

/// One tile: `rows` code rows from i0 (up to 4 bit rows, inside one A panel) by one 16-column group from j0
/// (bw panels), `cols` of them real, and its output.
[[LOWBIT_TARGET_AVX2_POPCNT]] inline void popcount_tile(popcount_job const& job, std::size_t i0, std::size_t rows,
                                                       std::size_t j0, std::size_t cols)
{
    constexpr std::size_t nr = popcount_nr;
    std::size_t const per = job.code_rows_per_panel();
    int const ba = job.ba, bw = job.bw;
    std::uint32_t const* bg = job.b + (j0 / nr) * static_cast<std::size_t>(bw) * job.b_panel_words();
    std::size_t const in_panel = i0 % per;
    std::uint32_t const* ap = job.a + (i0 / per) * job.a_panel_words() + in_panel * static_cast<std::size_t>(ba);
    __m256i comb[4][2];
    for (std::size_t r = 0; r < rows; ++r) comb[r][0] = comb[r][1] = _mm256_setzero_si256();
    for (int q = 0; q < bw; ++q) {
        __m256i sum[4][2];
        std::uint32_t const* bp = bg + static_cast<std::size_t>(q) * job.b_panel_words();
        int const bit_rows = static_cast<int>(rows) * ba;
        if (job.xor_op)
            popcount_subtile_any<true>(bit_rows, job.kw, ap, job.mr, bp, sum);
        else
            popcount_subtile_any<false>(bit_rows, job.kw, ap, job.mr, bp, sum);
        for (std::size_t r = 0; r < rows; ++r)
            for (int p = 0; p < ba; ++p) {
                __m128i const shift = _mm_cvtsi32_si128(p + q);  // weight 2^(p+q) of the plane pair
                std::size_t const br = r * static_cast<std::size_t>(ba) + static_cast<std::size_t>(p);
                for (int h = 0; h < 2; ++h) comb[r][h] = _mm256_add_epi32(comb[r][h], _mm256_sll_epi32(sum[br][h], shift));
            }
    }
    __m256i const kvec = _mm256_set1_epi32(static_cast<int>(job.k));
    for (std::size_t r = 0; r < rows; ++r) {
        unsigned bits = 0;
        for (std::size_t h = 0; h < 2 && 8 * h < cols; ++h) {
            __m256i v = comb[r][h];
            if (job.xor_op) v = _mm256_sub_epi32(kvec, _mm256_add_epi32(v, v));  // binary: K - 2 * popcount
            bits |= store8_avx2(job.out, i0 + r, j0 + 8 * h, v, std::min<std::size_t>(8, cols - 8 * h)) << (8 * h);
        }
        if (job.out.what == int_epilogue::kind::bits) write_bits(job.out, i0 + r, j0, bits, cols);
    }
}

/// The tasks [t0, t1) of a popcount job: tiles of 4 bit rows by 16 columns.
inline void popcount_tasks(popcount_job const& job, std::size_t t0, std::size_t t1)
{
    std::size_t const chunk = 4 / static_cast<std::size_t>(job.ba);  // code rows per tile: 4 bit rows
    for_each_tile(job, chunk, popcount_nr, t0, t1, [&job](std::size_t i0, std::size_t rows, std::size_t j0, std::size_t cols) {
        popcount_tile(job, i0, rows, j0, cols);
    });
}

} // namespace lowbit::kernels::detail::avx2

#endif // LOWBIT_X86_DISPATCH
