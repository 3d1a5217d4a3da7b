// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The data layout shared by every path of the int8 GEMMs (int8_gemm, binary_int8_gemm): packed
/// panels, the job description and the packing routines.
///
/// Both operands are cut along K into groups of 4 bytes (one 32-bit word), zero-padded to kw = ceil(K / 4)
/// words; a zero byte in either operand adds nothing.
/// - A (activations, u8) is packed in panels of 6 rows: panel word (w, r) holds bytes 4w .. 4w + 3 of row r.
///   Signed (s8) activations are stored as u8 = s8 + 128 (the sign bit flipped) and corrected in the
///   epilogue by -128 * sum_p b(j, p), so every path multiplies u8 by s8.
/// - B (weights, s8) is packed in panels of 16 columns: panel word (w, c) holds bytes 4w .. 4w + 3 of
///   column c. This is the operand layout of vpdpbusd: one broadcast A word against 16 columns adds 4
///   products per 32-bit lane, and each lane is one output column (no reduction across lanes).
// IWYU pragma: private

#include <lowbit/kernels/arch/int_epilogue.hpp>
#include <lowbit/kernels/arch/tile_tasks.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/matrix_view.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lowbit::kernels::detail {

inline constexpr std::size_t int8_mr = 6;   ///< rows per A panel
inline constexpr std::size_t int8_nr = 16;  ///< columns per B panel
/// Below this many multiply-adds (about 30 us on one core without VNNI) a GEMM runs on the calling thread.
inline constexpr std::size_t int8_parallel_min_madds = std::size_t{1} << 22;
/// Largest K whose sums cannot overflow int32: |u8 * s8| <= 255 * 128 = 32640, and 65793 * 32640 < 2^31.
inline constexpr std::size_t int8_max_k = 65793;

/// One int8 GEMM, as every path sees it: its task split (m, n, ...; panel_rows = int8_mr) and operands.
struct int8_job : task_grid {
    std::uint32_t const* a = nullptr;  ///< A panels (4 u8 per word), kw * int8_mr words each
    std::uint32_t const* b = nullptr;  ///< B panels (4 s8 per word), kw * int8_nr words each
    std::size_t kw = 0;
    std::size_t k = 0;
    int_epilogue out;

    std::size_t a_panel_words() const noexcept { return kw * int8_mr; }
    std::size_t b_panel_words() const noexcept { return kw * int8_nr; }
};

/// 32-bit words of a row of k bytes.
constexpr std::size_t int8_words(std::size_t k) noexcept { return (k + 3) / 4; }

/// Word w of a byte row of k bytes, bytes past k zero, each byte xor `flip` (0x80 turns s8 into u8 + 128).
inline std::uint32_t byte_row_word(void const* row, std::size_t k, std::size_t w, std::uint8_t flip) noexcept
{
    auto const* p = static_cast<std::uint8_t const*>(row) + 4 * w;
    std::uint32_t v = 0;
    if (4 * w + 4 <= k) {
        std::memcpy(&v, p, 4);  // byte order does not matter: A and B words are built alike
        return v ^ (0x01010101u * flip);
    }
    for (std::size_t t = 0; 4 * w + t < k; ++t) v |= static_cast<std::uint32_t>(p[t] ^ flip) << (8 * t);
    return v;
}

/// Packs A panel p from rows of k bytes (u8, or s8 with flip = 0x80).
template <class T>
void pack_int8_a_panel(matrix_view<T> const& a, std::size_t kw, std::size_t p, std::uint8_t flip,
                       std::uint32_t* dst) noexcept
{
    for (std::size_t r = 0; r < int8_mr; ++r) {
        std::size_t const i = p * int8_mr + r;
        for (std::size_t w = 0; w < kw; ++w)
            dst[w * int8_mr + r] = i < a.rows ? byte_row_word(a.data + i * a.ld, a.cols, w, flip) : 0;
    }
}

/// Packs B panel g from rows of k s8 weights.
inline void pack_int8_b_panel(matrix_view<std::int8_t> const& b, std::size_t kw, std::size_t g,
                              std::uint32_t* dst) noexcept
{
    for (std::size_t c = 0; c < int8_nr; ++c) {
        std::size_t const j = g * int8_nr + c;
        for (std::size_t w = 0; w < kw; ++w)
            dst[w * int8_nr + c] = j < b.rows ? byte_row_word(b.data + j * b.ld, b.cols, w, 0) : 0;
    }
}

/// Packs B panel g from bit rows: bit 1 -> +1, bit 0 -> -1 (as s8 bytes 0x01 / 0xFF), padding 0.
inline void pack_sign_b_panel(bit_matrix_view const& b, std::size_t kw, std::size_t g, std::uint32_t* dst) noexcept
{
    for (std::size_t c = 0; c < int8_nr; ++c) {
        std::size_t const j = g * int8_nr + c;
        for (std::size_t w = 0; w < kw; ++w) {
            std::uint32_t v = 0;
            if (j < b.rows)
                for (std::size_t t = 0; t < 4 && 4 * w + t < b.cols; ++t)
                    v |= (bit_at(b, j, 4 * w + t) ? 0x01u : 0xFFu) << (8 * t);
            dst[w * int8_nr + c] = v;
        }
    }
}

/// The task split of an int8 job whose m and n are set (arch/tile_tasks.hpp).
inline void plan_int8_tasks(int8_job& job) noexcept
{
    job.panel_rows = int8_mr;
    plan_tasks(job);
}

} // namespace lowbit::kernels::detail
