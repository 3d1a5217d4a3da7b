// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Scalar reference of kernels/binary_gemm.hpp: each bit is turned into +1 (bit 1) or -1 (bit 0)
/// and multiplied, a triple loop with no popcount, written to be obviously correct.

#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/kernels/reference/int_gemm_output.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit::kernels::reference {

/// @brief The +-1 value of bit c of row r.
inline int sign_at(bit_matrix_view const& m, std::size_t r, std::size_t c) noexcept
{
    return bit_at(m, r, c) ? 1 : -1;
}

/// @brief v(i, j) = sum_p sign(a(i, p)) * sign(b(j, p)) for the m x k bit matrix a and the n x k bit
/// matrix b, written through `out`.
template <IntGemmOutput Output>
void binary_gemm(bit_matrix_view const& a, bit_matrix_view const& b, Output const& out)
{
    std::vector<std::int32_t> v(a.rows * b.rows);
    for (std::size_t i = 0; i < a.rows; ++i)
        for (std::size_t j = 0; j < b.rows; ++j) {
            std::int32_t s = 0;
            for (std::size_t p = 0; p < a.cols; ++p) s += sign_at(a, i, p) * sign_at(b, j, p);
            v[i * b.rows + j] = s;
        }
    write_output(v.data(), a.rows, b.rows, out);
}

} // namespace lowbit::kernels::reference
