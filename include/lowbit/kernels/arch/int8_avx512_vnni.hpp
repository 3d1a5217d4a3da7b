// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The AVX-512 VNNI path of the int8 GEMMs: vpdpbusd multiplies 4 u8 of A by 4 s8 of B per 32-bit
/// lane and adds the 4 products to the int32 lane without saturation (vpdpbusds would saturate; the K limit
/// int8_max_k keeps the sums in range, so both are exact). The tile is 6 rows by 4 panels of 16 columns,
/// 24 zmm accumulators: per word of K, 4 B loads and 6 broadcasts feed 24 vpdpbusd (64 multiply-adds each).
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

namespace lowbit::kernels::detail::avx512 {

/// int32 sums of R rows of an A panel by NB consecutive B panels over kw words, into out[r][j].
/// noinline for the same reason as popcount_tile: the accumulators stay in registers.
template <int R, int NB>
[[LOWBIT_TARGET_AVX512_VNNI, gnu::noinline]] inline void
int8_tile(std::size_t kw, std::uint32_t const* a, std::uint32_t const* b, std::size_t bstride, __m512i (&out)[R][NB]) noexcept
{
    __m512i acc[R][NB];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_setzero_si512();
    for (std::size_t w = 0; w < kw; ++w) {
        __m512i bv[NB];
#pragma GCC unroll 4
        for (int j = 0; j < NB; ++j) bv[j] = _mm512_loadu_si512(b + static_cast<std::size_t>(j) * bstride + w * int8_nr);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            __m512i const av = _mm512_set1_epi32(static_cast<int>(a[w * int8_mr + static_cast<std::size_t>(r)]));
#pragma GCC unroll 4
            for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, bv[j]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NB; ++j) out[r][j] = acc[r][j];
}

template <int R, int NB, bool Fast>
[[LOWBIT_TARGET_AVX512_VNNI, gnu::always_inline]] inline void
int8_store_rows(int_epilogue const& out, __m512i const (&acc)[R][NB], std::size_t i0, std::size_t j0, std::size_t cols) noexcept
{
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        std::int32_t const* const cls = Fast ? nullptr : class_row(out, i0 + static_cast<std::size_t>(r));
        std::uint64_t bits = 0;
#pragma GCC unroll 4
        for (int j = 0; j < NB; ++j) {
            std::size_t const c0 = static_cast<std::size_t>(j) * int8_nr;
            unsigned const b16 = store16_avx512<Fast>(out, cls, i0 + static_cast<std::size_t>(r), j0 + c0, acc[r][j],
                                                      Fast ? int8_nr : std::min(int8_nr, cols - c0));
            bits |= std::uint64_t{b16} << c0;
        }
        if (out.what == int_epilogue::kind::bits) write_bits(out, i0 + static_cast<std::size_t>(r), j0, bits, cols);
    }
}

/// One tile of R rows by NB panels and its output; `cols` (<= 16 NB) columns from j0 are real.
template <int R, int NB>
[[LOWBIT_TARGET_AVX512_VNNI]] inline void
int8_tile_store(int8_job const& job, std::uint32_t const* ap, std::uint32_t const* bp, std::size_t i0, std::size_t j0,
                std::size_t cols) noexcept
{
    __m512i acc[R][NB];
    int8_tile<R, NB>(job.kw, ap, bp, job.b_panel_words(), acc);
    int_epilogue const out = job.out;  // a local copy, as in popcount_tile_store
    if (fast_epilogue(out, cols, static_cast<std::size_t>(NB) * int8_nr))
        int8_store_rows<R, NB, true>(out, acc, i0, j0, cols);
    else
        int8_store_rows<R, NB, false>(out, acc, i0, j0, cols);
}

using int8_tile_fn = void (*)(int8_job const&, std::uint32_t const*, std::uint32_t const*, std::size_t, std::size_t,
                              std::size_t) noexcept;

template <int R = 1>
constexpr int8_tile_fn pick_int8_tile(std::size_t rows, std::size_t panels) noexcept
{
    if constexpr (R > static_cast<int>(int8_mr)) {
        return nullptr;
    } else {
        if (rows != static_cast<std::size_t>(R)) return pick_int8_tile<R + 1>(rows, panels);
        switch (panels) {
        case 1: return &int8_tile_store<R, 1>;
        case 2: return &int8_tile_store<R, 2>;
        case 3: return &int8_tile_store<R, 3>;
        default: return &int8_tile_store<R, 4>;
        }
    }
}

/// The tasks [t0, t1) of an int8 job: tiles of 6 rows (one A panel) by 64 columns.
inline void int8_tasks(int8_job const& job, std::size_t t0, std::size_t t1)
{
    for_each_tile(job, int8_mr, 4 * int8_nr, t0, t1, [&job](std::size_t i0, std::size_t rows, std::size_t j0, std::size_t cols) {
        pick_int8_tile(rows, (cols + int8_nr - 1) / int8_nr)(job, job.a + (i0 / int8_mr) * job.a_panel_words(),
                                                            job.b + (j0 / int8_nr) * job.b_panel_words(), i0, j0, cols);
    });
}

} // namespace lowbit::kernels::detail::avx512

#endif // LOWBIT_X86_DISPATCH
