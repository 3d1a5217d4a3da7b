// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The data layout shared by every path of the popcount GEMMs (binary_gemm, bitserial_gemm,
/// binary_conv2d): packed panels, the job description and the packing routines.
///
/// Both operands are sets of "bit rows" of K bits, cut into kw = ceil(K / 32) words of 32 bits and padded
/// with zero bits. A zero bit in both operands contributes nothing to either product (0 xor 0 = 0,
/// 0 and 0 = 0), so the kernels run over whole words and the binary formula uses the true K.
///
/// - A (the left operand, one bit row per output row and bit plane) is packed in panels of `mr` bit rows,
///   interleaved word by word: panel word (w, r) is word w of bit row r. A code row i contributes the bit
///   rows (i, plane 0 .. ba-1) in that order, so a panel holds mr / ba code rows.
/// - B (one bit row per output column and plane) is packed in panels of 16 bit rows of one plane:
///   panel word (w, c) is word w of column 16g + c, plane q, for panel g * bw + q.
///
/// The microkernels compute, for a tile of panel rows and panels, the counts P = sum_w popcount(a op b)
/// with the 16 32-bit lanes of a vector holding 16 output columns: a word of A is broadcast to all lanes
/// and combined with one word of 16 columns of B at once, the outer-product form of a float GEMM
/// microkernel. Nothing is reduced across lanes, unlike the usual form that vectorises along K and ends each
/// dot product with a horizontal sum, which costs more than the dot product itself at K = 1024 (two 512-bit
/// vectors). 32-bit rather than 64-bit words make the lanes int32 already, so the output transform needs no
/// narrowing (vpopcntd and vpopcntq have the same throughput, measured).
///
/// The layout is the same for every instruction set, so packed weights can be used by any path.
// IWYU pragma: private

#include <lowbit/kernels/arch/int_epilogue.hpp>
#include <lowbit/kernels/arch/tile_tasks.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/matrix_view.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace lowbit::kernels::detail {

/// Output columns per B panel.
inline constexpr std::size_t popcount_nr = 16;
/// Below this many bit operations (m n k ba bw, about 30 us on one AVX-512 core) a GEMM runs on the
/// calling thread: waking the pool costs more than it saves.
inline constexpr std::size_t popcount_parallel_min_ops = std::size_t{1} << 26;

/// Bit rows per A panel: 6 for binary and 2-bit activations (3 code rows x 2 planes), 4 for 4-bit ones.
/// The AVX-512 tile is 6 x 4 panels (24 accumulators; see arch/popcount_avx512.hpp).
constexpr std::size_t popcount_mr(int ba) noexcept { return ba == 4 ? 4 : 6; }

/// One popcount GEMM, as every path sees it: its task split (m output rows, n columns, ...; panel_rows =
/// code_rows_per_panel()) and operands.
struct popcount_job : task_grid {
    std::uint32_t const* a = nullptr;  ///< A panels, kw * mr words each
    std::uint32_t const* b = nullptr;  ///< B panels, kw * 16 words each
    std::size_t kw = 0;                ///< 32-bit words per bit row
    std::size_t k = 0;                 ///< true K in bits
    int ba = 1, bw = 1;                ///< bit planes per code of A and of B (1, 1 for binary)
    bool xor_op = true;                ///< binary: xor; bit-serial: and
    std::size_t mr = 6;                ///< bit rows per A panel (a multiple of ba)
    int_epilogue out;

    std::size_t code_rows_per_panel() const noexcept { return mr / static_cast<std::size_t>(ba); }
    std::size_t a_panel_words() const noexcept { return kw * mr; }
    std::size_t b_panel_words() const noexcept { return kw * popcount_nr; }
};

/// 32-bit words of a bit row of k bits.
constexpr std::size_t popcount_words(std::size_t k) noexcept { return (k + 31) / 32; }

/// Number of A panels for m code rows of ba planes.
inline std::size_t popcount_a_panels(std::size_t m, int ba) noexcept
{
    std::size_t const per = popcount_mr(ba) / static_cast<std::size_t>(ba);
    return (m + per - 1) / per;
}

/// Number of B panels for n columns of bw planes.
inline std::size_t popcount_b_panels(std::size_t n, int bw) noexcept
{
    return (n + popcount_nr - 1) / popcount_nr * static_cast<std::size_t>(bw);
}

/// 32-bit word w of a row of k bits stored in 64-bit words, bits past k cleared. On a little-endian
/// machine this is the w-th uint32 of the row's memory; shifting keeps it independent of byte order.
inline std::uint32_t row_word32(std::uint64_t const* row, std::size_t k, std::size_t w) noexcept
{
    auto v = static_cast<std::uint32_t>(row[w / 2] >> (32 * (w % 2)));
    std::size_t const valid = k - 32 * w;
    return valid >= 32 ? v : v & ((std::uint32_t{1} << valid) - 1);
}

/// Bit planes 0 .. planes-1 of 32 codes (one per byte; fewer than 32 are zero-padded) into out[q]: bit c of
/// out[q] is bit q of code c. With SSE2 (every x86-64 CPU): shift bit q of each byte to its top bit and
/// gather the 16 top bits with pmovmskb, 2 instructions per 16 codes and plane. Elsewhere, 8 codes at a
/// time: (x >> q) & 0x01..01 keeps bit q of each byte at bit 8t, and the product with 0x0102040810204080
/// adds byte t's bit at bit 56 + t without carries (every partial product lands on a different bit), so
/// the top byte holds the 8 bits in order.
inline void code_planes_word(std::uint8_t const* codes, std::size_t count, int planes, std::uint32_t* out) noexcept
{
    std::uint8_t buf[32];
    if (count < 32) {
        std::memset(buf, 0, sizeof buf);
        std::memcpy(buf, codes, count);
        codes = buf;
    }
#if defined(__SSE2__)
    __m128i const lo = _mm_loadu_si128(reinterpret_cast<__m128i const*>(codes));
    __m128i const hi = _mm_loadu_si128(reinterpret_cast<__m128i const*>(codes + 16));
    for (int q = 0; q < planes; ++q) {
        __m128i const shift = _mm_cvtsi32_si128(7 - q);  // bit q of each byte -> bit 7 (16-bit lanes: no byte shift)
        auto const l = static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_sll_epi16(lo, shift)));
        auto const h = static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_sll_epi16(hi, shift)));
        out[q] = l | (h << 16);
    }
#else
    std::uint64_t x[4];
    std::memcpy(x, codes, 32);
    for (int q = 0; q < planes; ++q) {
        std::uint32_t word = 0;
        for (std::size_t g = 0; g < 4; ++g) {
            std::uint64_t const y = (x[g] >> q) & 0x0101010101010101ull;
            word |= static_cast<std::uint32_t>((y * 0x0102040810204080ull) >> 56) << (8 * g);
        }
        out[q] = word;
    }
#endif
}

/// Packs A panel p of a binary GEMM (bit rows = rows of `a`).
inline void pack_binary_a_panel(bit_matrix_view const& a, std::size_t kw, std::size_t mr, std::size_t p,
                                std::uint32_t* dst) noexcept
{
    for (std::size_t r = 0; r < mr; ++r) {
        std::size_t const i = p * mr + r;
        std::uint64_t const* src = i < a.rows ? a.data + i * a.ld : nullptr;
        for (std::size_t w = 0; w < kw; ++w) dst[w * mr + r] = src ? row_word32(src, a.cols, w) : 0;
    }
}

/// Packs B panel g of a binary GEMM (columns 16g .. 16g + 15 = rows of `b`).
inline void pack_binary_b_panel(bit_matrix_view const& b, std::size_t kw, std::size_t g, std::uint32_t* dst) noexcept
{
    for (std::size_t c = 0; c < popcount_nr; ++c) {
        std::size_t const j = popcount_nr * g + c;
        std::uint64_t const* src = j < b.rows ? b.data + j * b.ld : nullptr;
        for (std::size_t w = 0; w < kw; ++w) dst[w * popcount_nr + c] = src ? row_word32(src, b.cols, w) : 0;
    }
}

/// Packs A panel p of a bit-serial GEMM: code rows of `a`, planes 0 .. ba-1 each.
inline void pack_codes_a_panel(matrix_view<std::uint8_t> const& a, int ba, std::size_t kw, std::size_t mr,
                               std::size_t p, std::uint32_t* dst) noexcept
{
    std::size_t const per = mr / static_cast<std::size_t>(ba);
    for (std::size_t rr = 0; rr < per; ++rr) {
        std::size_t const i = p * per + rr;
        for (std::size_t w = 0; w < kw; ++w) {
            std::uint32_t* out = dst + w * mr + rr * static_cast<std::size_t>(ba);  // the ba planes are adjacent
            if (i < a.rows)
                code_planes_word(a.data + i * a.ld + 32 * w, a.cols - 32 * w, ba, out);
            else
                for (int q = 0; q < ba; ++q) out[q] = 0;
        }
    }
}

/// Packs the bw B panels of column group g of a bit-serial GEMM (panel g * bw + q at dst + q * kw * 16).
inline void pack_codes_b_group(matrix_view<std::uint8_t> const& b, int bw, std::size_t kw, std::size_t g,
                               std::uint32_t* dst) noexcept
{
    for (std::size_t c = 0; c < popcount_nr; ++c) {
        std::size_t const j = popcount_nr * g + c;
        std::uint32_t planes[4] = {};
        for (std::size_t w = 0; w < kw; ++w) {
            if (j < b.rows) code_planes_word(b.data + j * b.ld + 32 * w, b.cols - 32 * w, bw, planes);
            for (int q = 0; q < bw; ++q) dst[static_cast<std::size_t>(q) * kw * popcount_nr + w * popcount_nr + c] = planes[q];
        }
    }
}

/// The task split of a job whose m, n, ba and mr are set (arch/tile_tasks.hpp).
inline void plan_popcount_tasks(popcount_job& job) noexcept
{
    job.panel_rows = job.code_rows_per_panel();
    plan_tasks(job);
}

} // namespace lowbit::kernels::detail
