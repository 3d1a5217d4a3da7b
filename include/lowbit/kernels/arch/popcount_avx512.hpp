// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The AVX-512 VPOPCNTDQ path of the popcount GEMMs.
///
/// The microkernel keeps a tile of up to 6 bit rows by 4 panels (16 columns each, 64 in all) in 24 zmm
/// accumulators of 32-bit lanes. Per 32-bit word of K it loads 4 B vectors and broadcasts 6 A words
/// (vpbroadcastd from memory runs on a load port), then does 24 x (vpxord or vpandd, vpopcntd, vpaddd):
/// 72 vector ALU instructions against 10 loads. That makes the loop bound by the ALU ports, like the
/// register-only xor+popcount+add loop of bench/int_gemm.cpp: measured on a Zen 5 core, a 6 x 4 tile on
/// L1-resident panels runs at 93-100 % of that loop, a 4 x 4 tile (8 loads per 48 ALU instructions) at
/// about 67 %. 24 accumulators, 4 B vectors, the broadcast and a temporary use 30 of the 32 zmm registers.
///
/// Bit-serial GEMMs use the same tile: bit rows are (code row, plane p) and panels (column group, plane q),
/// so a 6 x 4 tile is 3 code rows x 32 columns at 2 x 2 bits, and a 4 x 4 tile 1 code row x 16 columns at
/// 4 x 4 bits. The epilogue adds the plane pairs with their weights 2^(p+q) (vpslld) and applies the output
/// transform to 16 columns at a time (arch/int_epilogue.hpp; masked stores only for column tails).
///
/// The loops over the tile are unrolled with `#pragma GCC unroll`: without it GCC 12 at -O2 keeps the
/// accumulator array in memory (measured: 60 % of the bound instead of 100 %).
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

namespace lowbit::kernels::detail::avx512 {

/// Sums popcount(a op b) over kw words for R bit rows of an A panel (word w of row r at a[w * mr + r]) and
/// NB consecutive B panels (bstride words apart), into out[r][j] (16 columns of 32-bit sums).
/// noinline: inlined into the tile function, GCC 12 kept half of the accumulators on the stack inside the
/// loop (measured: 64 % of the bound instead of 97 %); as a function of its own it keeps all 24 in
/// registers and stores them once at the end. (Storing K - 2P straight to the int32 output from here
/// instead made GCC spill again: half the speed.)
template <int R, int NB, bool Xor>
[[LOWBIT_TARGET_AVX512_VPOPCNTDQ, gnu::noinline]] inline void
popcount_tile(std::size_t kw, std::uint32_t const* a, std::size_t mr, std::uint32_t const* b, std::size_t bstride,
              __m512i (&out)[R][NB]) noexcept
{
    __m512i acc[R][NB];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_setzero_si512();
    for (std::size_t w = 0; w < kw; ++w) {
        __m512i bv[NB];
#pragma GCC unroll 4
        for (int j = 0; j < NB; ++j) bv[j] = _mm512_loadu_si512(b + static_cast<std::size_t>(j) * bstride + w * popcount_nr);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            __m512i const av = _mm512_set1_epi32(static_cast<int>(a[w * mr + static_cast<std::size_t>(r)]));
#pragma GCC unroll 4
            for (int j = 0; j < NB; ++j) {
                __m512i const x = Xor ? _mm512_xor_si512(av, bv[j]) : _mm512_and_si512(av, bv[j]);
                acc[r][j] = _mm512_add_epi32(acc[r][j], _mm512_popcnt_epi32(x));
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int j = 0; j < NB; ++j) out[r][j] = acc[r][j];
}

/// The output of a tile: adds the plane pairs (bit-serial) or forms K - 2 P (binary), then the transform.
template <int BA, int BW, int CR, int G, bool Fast>
[[LOWBIT_TARGET_AVX512_VPOPCNTDQ, gnu::always_inline]] inline void
popcount_store_rows(int_epilogue const& out, std::size_t k, __m512i const (&acc)[CR * BA][G * BW], std::size_t i0,
                    std::size_t j0, std::size_t cols) noexcept
{
    constexpr bool binary = BA == 1 && BW == 1;
    __m512i const kvec = _mm512_set1_epi32(static_cast<int>(k));
#pragma GCC unroll 8
    for (int r = 0; r < CR; ++r) {
        std::int32_t const* const cls = Fast ? nullptr : class_row(out, i0 + static_cast<std::size_t>(r));
        std::uint64_t bits = 0;
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g) {
            std::size_t const c0 = static_cast<std::size_t>(g) * popcount_nr;
            __m512i v;
            if constexpr (binary) {
                v = _mm512_sub_epi32(kvec, _mm512_add_epi32(acc[r][g], acc[r][g]));  // K - 2 * popcount
            } else {
                v = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int p = 0; p < BA; ++p)
#pragma GCC unroll 4
                    for (int q = 0; q < BW; ++q)
                        v = _mm512_add_epi32(
                            v, _mm512_maskz_sll_epi32(0xFFFF, acc[r * BA + p][g * BW + q], _mm_cvtsi32_si128(p + q)));
            }
            unsigned const b16 = store16_avx512<Fast>(out, cls, i0 + static_cast<std::size_t>(r), j0 + c0, v,
                                                      Fast ? popcount_nr : std::min(popcount_nr, cols - c0));
            bits |= std::uint64_t{b16} << c0;
        }
        if (out.what == int_epilogue::kind::bits) write_bits(out, i0 + static_cast<std::size_t>(r), j0, bits, cols);
    }
}

/// One tile: CR code rows (CR * BA bit rows) by G groups of 16 columns (G * BW panels), then its output.
/// `cols` (<= 16 G) columns from j0 are real.
template <int BA, int BW, int CR, int G>
[[LOWBIT_TARGET_AVX512_VPOPCNTDQ]] inline void
popcount_tile_store(popcount_job const& job, std::uint32_t const* ap, std::uint32_t const* bp, std::size_t i0,
                    std::size_t j0, std::size_t cols) noexcept
{
    // A local copy: the vector stores may alias anything (__m512i is may_alias), so through the reference
    // every field would be reloaded after each store.
    int_epilogue const out = job.out;
    constexpr std::size_t tile_cols = static_cast<std::size_t>(G) * popcount_nr;
    __m512i acc[CR * BA][G * BW];
    popcount_tile<CR * BA, G * BW, BA == 1 && BW == 1>(job.kw, ap, job.mr, bp, job.b_panel_words(), acc);
    if (fast_epilogue(out, cols, tile_cols))
        popcount_store_rows<BA, BW, CR, G, true>(out, job.k, acc, i0, j0, cols);
    else
        popcount_store_rows<BA, BW, CR, G, false>(out, job.k, acc, i0, j0, cols);
}

using tile_fn = void (*)(popcount_job const&, std::uint32_t const*, std::uint32_t const*, std::size_t, std::size_t,
                         std::size_t) noexcept;

/// The tile function for cr code rows and g column groups (tails included).
template <int BA, int BW, int CR = 1>
constexpr tile_fn pick_tile(std::size_t cr, std::size_t g) noexcept
{
    constexpr int max_cr = static_cast<int>(popcount_mr(BA)) / BA;
    if constexpr (CR > max_cr) {
        return nullptr;
    } else {
        if (cr != static_cast<std::size_t>(CR)) return pick_tile<BA, BW, CR + 1>(cr, g);
        switch (g) {
        case 1: return &popcount_tile_store<BA, BW, CR, 1>;
        case 2:
            if constexpr (BW <= 2) return &popcount_tile_store<BA, BW, CR, 2>;
            break;
        case 3:
            if constexpr (BW == 1) return &popcount_tile_store<BA, BW, CR, 3>;
            break;
        case 4:
            if constexpr (BW == 1) return &popcount_tile_store<BA, BW, CR, 4>;
            break;
        default: break;
        }
        return nullptr;
    }
}

/// The tasks [t0, t1) of a job with BA x BW bit planes: tiles of one A panel by 4 B panels.
template <int BA, int BW>
void popcount_tasks_planes(popcount_job const& job, std::size_t t0, std::size_t t1)
{
    constexpr std::size_t tile_cols = 4 / BW * popcount_nr;  // 4 panels
    std::size_t const per = job.code_rows_per_panel();
    for_each_tile(job, per, tile_cols, t0, t1, [&job, per](std::size_t i0, std::size_t rows, std::size_t j0, std::size_t cols) {
        pick_tile<BA, BW>(rows, (cols + popcount_nr - 1) / popcount_nr)(
            job, job.a + (i0 / per) * job.a_panel_words(), job.b + (j0 / popcount_nr) * BW * job.b_panel_words(), i0, j0,
            cols);
    });
}

/// The tasks [t0, t1) of a popcount job: binary, or bit-serial with 2 or 4 bits per operand.
inline void popcount_tasks(popcount_job const& job, std::size_t t0, std::size_t t1)
{
    switch (job.ba * 8 + job.bw) {
    case 1 * 8 + 1: popcount_tasks_planes<1, 1>(job, t0, t1); break;
    case 2 * 8 + 2: popcount_tasks_planes<2, 2>(job, t0, t1); break;
    case 2 * 8 + 4: popcount_tasks_planes<2, 4>(job, t0, t1); break;
    case 4 * 8 + 2: popcount_tasks_planes<4, 2>(job, t0, t1); break;
    default: popcount_tasks_planes<4, 4>(job, t0, t1); break;
    }
}

} // namespace lowbit::kernels::detail::avx512

#endif // LOWBIT_X86_DISPATCH
