// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief matrix_view<T>: a read-only row-major matrix of one value per element (int8 operands, bit-serial
/// codes), the counterpart of bit_matrix_view for the integer kernels.

#include <cstddef>

namespace lowbit::kernels {

/// @brief `rows` x `cols` elements, row r at `data + r * ld`.
template <class T>
struct matrix_view {
    T const* data = nullptr;
    std::size_t rows = 0;
    std::size_t cols = 0;
    std::size_t ld = 0;  ///< elements between rows (>= cols)
};

} // namespace lowbit::kernels
