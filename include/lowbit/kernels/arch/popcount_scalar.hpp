// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The scalar path of the popcount GEMMs: std::popcount on the 32-bit words of the packed panels,
/// one output row by 16 columns at a time. It is compiled twice, plainly and with `target("popcnt")`, so
/// that it uses the popcnt instruction wherever the CPU has it while a baseline build stays baseline.
// IWYU pragma: private

#include <lowbit/kernels/arch/int_epilogue.hpp>
#include <lowbit/kernels/arch/popcount_job.hpp>
#include <lowbit/kernels/arch/targets.hpp>
#include <lowbit/kernels/arch/tile_tasks.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace lowbit::kernels::detail::scalar {

/// Output rows [i0, i0 + rows) by up to 16 columns from j0 (one column group, bw panels), a row at a time;
/// the body shared by the two compiled versions below.
[[gnu::always_inline]] inline void popcount_tile_body(popcount_job const& job, std::size_t i0, std::size_t rows,
                                                      std::size_t j0, std::size_t cols)
{
    constexpr std::size_t nr = popcount_nr;
    std::size_t const per = job.code_rows_per_panel();
    auto const ba = static_cast<std::size_t>(job.ba), bw = static_cast<std::size_t>(job.bw);
    std::uint32_t const* bg = job.b + (j0 / nr) * bw * job.b_panel_words();
    for (std::size_t i = i0; i < i0 + rows; ++i) {
        std::uint32_t const* ap = job.a + (i / per) * job.a_panel_words() + (i % per) * ba;
        std::int64_t raw[nr] = {};
        for (std::size_t p = 0; p < ba; ++p)
            for (std::size_t q = 0; q < bw; ++q) {
                std::uint32_t const* bp = bg + q * job.b_panel_words();
                for (std::size_t c = 0; c < cols; ++c) {
                    std::int64_t s = 0;
                    for (std::size_t w = 0; w < job.kw; ++w) {
                        std::uint32_t const x =
                            job.xor_op ? ap[w * job.mr + p] ^ bp[w * nr + c] : ap[w * job.mr + p] & bp[w * nr + c];
                        s += std::popcount(x);
                    }
                    raw[c] += s << (p + q);
                }
            }
        if (job.xor_op)
            for (auto& v : raw) v = static_cast<std::int64_t>(job.k) - 2 * v;
        store_scalar(job.out, i, j0, raw, cols);
    }
}

/// Portable version.
inline void popcount_tile(popcount_job const& job, std::size_t i0, std::size_t rows, std::size_t j0, std::size_t cols)
{
    popcount_tile_body(job, i0, rows, j0, cols);
}

/// The tasks [t0, t1) of a popcount job on the tile function Tile: tiles of one A panel by 16 columns.
template <auto Tile>
void popcount_tasks_of(popcount_job const& job, std::size_t t0, std::size_t t1)
{
    for_each_tile(job, job.panel_rows, popcount_nr, t0, t1,
                  [&job](std::size_t i0, std::size_t rows, std::size_t j0, std::size_t cols) {
                      Tile(job, i0, rows, j0, cols);
                  });
}

inline void popcount_tasks(popcount_job const& job, std::size_t t0, std::size_t t1)
{
    popcount_tasks_of<&popcount_tile>(job, t0, t1);
}

#if LOWBIT_X86_DISPATCH
/// The same code compiled for CPUs with the popcnt instruction (std::popcount becomes one instruction).
[[LOWBIT_TARGET_POPCNT]] inline void popcount_tile_popcnt(popcount_job const& job, std::size_t i0, std::size_t rows,
                                                         std::size_t j0, std::size_t cols)
{
    popcount_tile_body(job, i0, rows, j0, cols);
}

inline void popcount_tasks_popcnt(popcount_job const& job, std::size_t t0, std::size_t t1)
{
    popcount_tasks_of<&popcount_tile_popcnt>(job, t0, t1);
}
#endif

} // namespace lowbit::kernels::detail::scalar
