// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The scalar path of the int8 GEMMs: u8 x s8 products summed in int32, one row by 16 columns.
// IWYU pragma: private

#include <lowbit/kernels/arch/int8_job.hpp>
#include <lowbit/kernels/arch/int_epilogue.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace lowbit::kernels::detail::scalar {

/// The tasks [t0, t1) of an int8 job.
inline void int8_tasks(int8_job const& job, std::size_t t0, std::size_t t1)
{
    for (std::size_t t = t0; t < t1; ++t) {
        std::size_t const rb = t / job.col_blocks, cb = t % job.col_blocks;
        std::size_t const i_begin = rb * job.row_block, i_end = std::min(job.m, i_begin + job.row_block);
        std::size_t const j_begin = cb * int8_col_block, j_end = std::min(job.n, j_begin + int8_col_block);
        for (std::size_t j0 = j_begin; j0 < j_end; j0 += int8_nr) {
            std::size_t const cols = std::min(int8_nr, job.n - j0);
            std::uint32_t const* bp = job.b + (j0 / int8_nr) * job.b_panel_words();
            for (std::size_t i = i_begin; i < i_end; ++i) {
                std::uint32_t const* ap = job.a + (i / int8_mr) * job.a_panel_words() + i % int8_mr;
                std::int64_t raw[int8_nr] = {};
                for (std::size_t c = 0; c < cols; ++c) {
                    std::int32_t s = 0;
                    for (std::size_t w = 0; w < job.kw; ++w) {
                        std::uint32_t const av = ap[w * int8_mr], bv = bp[w * int8_nr + c];
                        for (unsigned byte = 0; byte < 4; ++byte)
                            s += static_cast<std::int32_t>((av >> (8 * byte)) & 0xFFu) *
                                 static_cast<std::int8_t>(static_cast<std::uint8_t>(bv >> (8 * byte)));
                    }
                    raw[c] = s;
                }
                store_scalar(job.out, i, j0, raw, cols);
            }
        }
    }
}

} // namespace lowbit::kernels::detail::scalar
