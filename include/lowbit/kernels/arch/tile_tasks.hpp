// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The one driver of the integer GEMMs (int8 and popcount, every instruction set): how an output of
/// m x n is cut into tasks for the pool, and the loop that walks a task's tiles. The per-ISA files hold only
/// their tile code -- a function of (first row, rows, first column, columns) -- and each names its tile
/// size; tests/kernels prove every one bit-identical to the scalar reference.
///
/// Task t is (row block t / col_blocks, column block t % col_blocks). Column blocks are 64 wide, so a task
/// owns whole 64-bit words of sign output and no two threads write one word. Row blocks are at most 96 rows
/// (for the popcount paths a task's A block, 96 rows x K bits, and B tile, 64 columns x K bits, stay in L1
/// up to K = 2048), shortened when there are few column blocks so that two threads get about 16 tasks to
/// share, and whole A panels long.
// IWYU pragma: private

#include <algorithm>
#include <cstddef>

namespace lowbit::kernels::detail {

inline constexpr std::size_t task_col_block = 64;  ///< output columns per task
inline constexpr std::size_t task_row_block = 96;  ///< output rows per task at most

/// The task split of one GEMM; the jobs of the int8 and popcount paths extend it.
struct task_grid {
    std::size_t m = 0, n = 0;        ///< output rows and columns
    std::size_t panel_rows = 1;      ///< output rows per packed A panel: a tile never straddles two
    std::size_t row_block = task_row_block;  ///< output rows per task (whole panels)
    std::size_t row_blocks = 0, col_blocks = 0;  ///< tasks = row_blocks * col_blocks, row block major

    std::size_t tasks() const noexcept { return row_blocks * col_blocks; }
};

/// Fills the split of a grid whose m, n and panel_rows are set.
inline void plan_tasks(task_grid& g) noexcept
{
    std::size_t const per = g.panel_rows;
    g.col_blocks = (g.n + task_col_block - 1) / task_col_block;
    std::size_t const want_row_blocks = (16 + g.col_blocks - 1) / std::max<std::size_t>(g.col_blocks, 1);
    std::size_t rows = std::min(task_row_block, (g.m + want_row_blocks - 1) / want_row_blocks);
    rows = std::max(per, (rows + per - 1) / per * per);
    g.row_block = rows;
    g.row_blocks = (g.m + rows - 1) / rows;
}

/// Calls tile(i0, rows, j0, cols) for the tiles of tasks [t0, t1): columns first in steps of tile_cols, then
/// rows in steps of up to tile_rows that stay inside one A panel; rows and cols are the real ones (tails
/// shorter). Every output element belongs to exactly one tile of one task.
template <class Tile>
void for_each_tile(task_grid const& g, std::size_t tile_rows, std::size_t tile_cols, std::size_t t0, std::size_t t1,
                   Tile&& tile)
{
    for (std::size_t t = t0; t < t1; ++t) {
        std::size_t const rb = t / g.col_blocks, cb = t % g.col_blocks;
        std::size_t const i_begin = rb * g.row_block, i_end = std::min(g.m, i_begin + g.row_block);
        std::size_t const j_begin = cb * task_col_block, j_end = std::min(g.n, j_begin + task_col_block);
        for (std::size_t j0 = j_begin; j0 < j_end; j0 += tile_cols) {
            std::size_t const cols = std::min(tile_cols, j_end - j0);
            for (std::size_t i0 = i_begin, rows = 0; i0 < i_end; i0 += rows) {
                rows = std::min({tile_rows, g.panel_rows - i0 % g.panel_rows, i_end - i0});
                tile(i0, rows, j0, cols);
            }
        }
    }
}

} // namespace lowbit::kernels::detail
