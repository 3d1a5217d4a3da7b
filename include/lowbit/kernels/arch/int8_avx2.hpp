// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The AVX2 path of the int8 GEMMs, exact: both operands are widened to 16 bits and multiplied with
/// vpmaddwd, whose 32-bit pair sums cannot overflow (|255 * 128| * 2 < 2^31). The shortcut vpmaddubsw
/// (u8 x s8 straight from bytes) saturates its 16-bit pair sums, 255 * 127 * 2 > 32767, so it is not used.
///
/// A subtile is 2 rows by one 16-column panel. Per word of K (4 bytes of 16 columns, 64 bytes) the panel is
/// widened once (4 x vpmovsxbw, shared by the rows), and each row's 4 bytes are broadcast and spread to
/// 16-bit lanes with one vpshufb; vpmaddwd then leaves two partial sums per column, added pairwise
/// (vphaddd) at the end. 8 accumulators, 4 widened B vectors, the A vector and the shuffle control take 14
/// of the 16 registers.
// IWYU pragma: private

#include <lowbit/kernels/arch/int8_job.hpp>
#include <lowbit/kernels/arch/int_epilogue.hpp>
#include <lowbit/kernels/arch/targets.hpp>
#include <lowbit/kernels/arch/tile_tasks.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#if LOWBIT_X86_DISPATCH
#include <immintrin.h>

namespace lowbit::kernels::detail::avx2 {

/// R (1 or 2) rows of an A panel against one B panel: the int32 sums of 16 columns, as out[r][0] (columns
/// 0-7) and out[r][1] (columns 8-15).
template <int R>
[[LOWBIT_TARGET_AVX2, gnu::always_inline]] inline void int8_subtile(std::size_t kw, std::uint32_t const* a,
                                                                        std::uint32_t const* b, __m256i (&out)[2][2]) noexcept
{
    __m256i const spread = _mm256_setr_epi8(0, -128, 1, -128, 2, -128, 3, -128, 0, -128, 1, -128, 2, -128, 3, -128, 0, -128,
                                            1, -128, 2, -128, 3, -128, 0, -128, 1, -128, 2, -128, 3, -128);
    __m256i acc[R][4];
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t) acc[r][t] = _mm256_setzero_si256();
    for (std::size_t w = 0; w < kw; ++w) {
        __m256i bv[4];  // columns 4t .. 4t + 3, 4 bytes each, as 16 x int16
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t)
            bv[t] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<__m128i const*>(b + w * int8_nr + 4 * static_cast<std::size_t>(t))));
#pragma GCC unroll 2
        for (int r = 0; r < R; ++r) {
            // a0 a1 a2 a3 as 16-bit lanes, repeated: vpshufb's -128 control bytes write zeros.
            __m256i const av = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(a[w * int8_mr + static_cast<std::size_t>(r)])), spread);
#pragma GCC unroll 4
            for (int t = 0; t < 4; ++t) acc[r][t] = _mm256_add_epi32(acc[r][t], _mm256_madd_epi16(av, bv[t]));
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            // hadd of columns (4h..4h+3) and (4h+4..4h+7): 128-bit lanes [c0 c1 c4 c5 | c2 c3 c6 c7]; reorder.
            __m256i const s = _mm256_hadd_epi32(acc[r][2 * h], acc[r][2 * h + 1]);
            out[r][h] = _mm256_permute4x64_epi64(s, _MM_SHUFFLE(3, 1, 2, 0));
        }
}

/// One tile: rows (1 or 2) rows from i0 by one 16-column panel from j0, `cols` of them real, and its output.
[[LOWBIT_TARGET_AVX2]] inline void int8_tile(int8_job const& job, std::size_t i0, std::size_t rows, std::size_t j0,
                                            std::size_t cols)
{
    std::uint32_t const* bp = job.b + (j0 / int8_nr) * job.b_panel_words();
    std::uint32_t const* ap = job.a + (i0 / int8_mr) * job.a_panel_words() + i0 % int8_mr;
    __m256i sums[2][2];
    if (rows == 2)
        int8_subtile<2>(job.kw, ap, bp, sums);
    else
        int8_subtile<1>(job.kw, ap, bp, sums);
    for (std::size_t r = 0; r < rows; ++r) {
        unsigned bits = 0;
        for (std::size_t h = 0; h < 2 && 8 * h < cols; ++h)
            bits |= store8_avx2(job.out, i0 + r, j0 + 8 * h, sums[r][h], std::min<std::size_t>(8, cols - 8 * h)) << (8 * h);
        if (job.out.what == int_epilogue::kind::bits) write_bits(job.out, i0 + r, j0, bits, cols);
    }
}

/// The tasks [t0, t1) of an int8 job: tiles of 2 rows by 16 columns.
inline void int8_tasks(int8_job const& job, std::size_t t0, std::size_t t1)
{
    for_each_tile(job, 2, int8_nr, t0, t1, [&job](std::size_t i0, std::size_t rows, std::size_t j0, std::size_t cols) {
        int8_tile(job, i0, rows, j0, cols);
    });
}

} // namespace lowbit::kernels::detail::avx2

#endif // LOWBIT_X86_DISPATCH
