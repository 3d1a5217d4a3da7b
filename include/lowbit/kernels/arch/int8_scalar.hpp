// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The scalar path of the int8 GEMMs: u8 x s8 products summed in int32, one row by 16 columns.
// IWYU pragma: private

#include <lowbit/kernels/arch/int8_job.hpp>
#include <lowbit/kernels/arch/int_epilogue.hpp>
#include <lowbit/kernels/arch/tile_tasks.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace lowbit::kernels::detail::scalar {

/// One output row i by up to 16 columns from j0 (one B panel).
inline void int8_tile(int8_job const& job, std::size_t i, std::size_t j0, std::size_t cols)
{
    std::uint32_t const* bp = job.b + (j0 / int8_nr) * job.b_panel_words();
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

/// The tasks [t0, t1) of an int8 job: tiles of 1 row by 16 columns.
inline void int8_tasks(int8_job const& job, std::size_t t0, std::size_t t1)
{
    for_each_tile(job, 1, int8_nr, t0, t1, [&job](std::size_t i0, std::size_t, std::size_t j0, std::size_t cols) {
        int8_tile(job, i0, j0, cols);
    });
}

} // namespace lowbit::kernels::detail::scalar
