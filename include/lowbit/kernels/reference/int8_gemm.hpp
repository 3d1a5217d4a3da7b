// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Scalar references of kernels/int8_gemm.hpp: plain integer triple loops, obviously correct.

#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/kernels/matrix_view.hpp>
#include <lowbit/kernels/reference/int_gemm_output.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit::kernels::reference {

/// @brief v(i, j) = sum_p a(i, p) * b(j, p) for 8-bit activations a (u8 or s8, m x k) and s8 weights b
/// (n x k), written through `out`.
template <class T, IntGemmOutput Output>
void int8_gemm(matrix_view<T> const& a, matrix_view<std::int8_t> const& b, Output const& out)
{
    std::vector<std::int32_t> v(a.rows * b.rows);
    for (std::size_t i = 0; i < a.rows; ++i)
        for (std::size_t j = 0; j < b.rows; ++j) {
            std::int32_t s = 0;
            for (std::size_t p = 0; p < a.cols; ++p)
                s += static_cast<std::int32_t>(a.data[i * a.ld + p]) * static_cast<std::int32_t>(b.data[j * b.ld + p]);
            v[i * b.rows + j] = s;
        }
    write_output(v.data(), a.rows, b.rows, out);
}

/// @brief v(i, j) = sum_p a(i, p) * (bit (j, p) of w ? +1 : -1), written through `out`.
template <class T, IntGemmOutput Output>
void binary_int8_gemm(matrix_view<T> const& a, bit_matrix_view const& w, Output const& out)
{
    std::vector<std::int32_t> v(a.rows * w.rows);
    for (std::size_t i = 0; i < a.rows; ++i)
        for (std::size_t j = 0; j < w.rows; ++j) {
            std::int32_t s = 0;
            for (std::size_t p = 0; p < a.cols; ++p)
                s += static_cast<std::int32_t>(a.data[i * a.ld + p]) * (bit_at(w, j, p) ? 1 : -1);
            v[i * w.rows + j] = s;
        }
    write_output(v.data(), a.rows, w.rows, out);
}

} // namespace lowbit::kernels::reference
