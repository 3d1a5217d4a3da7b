// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Scalar reference of kernels/bitserial_gemm.hpp: the plain integer product of the codes (no bit
/// planes), written to be obviously correct.

#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/kernels/matrix_view.hpp>
#include <lowbit/kernels/reference/int_gemm_output.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit::kernels::reference {

/// @brief v(i, j) = sum_p (a(i, p) mod 2^a_bits) * (b(j, p) mod 2^b_bits) for m x k codes a and n x k codes
/// b, written through `out`.
template <IntGemmOutput Output>
void bitserial_gemm(matrix_view<std::uint8_t> const& a, int a_bits, matrix_view<std::uint8_t> const& b, int b_bits,
                    Output const& out)
{
    unsigned const ma = (1u << a_bits) - 1u, mb = (1u << b_bits) - 1u;
    std::vector<std::int32_t> v(a.rows * b.rows);
    for (std::size_t i = 0; i < a.rows; ++i)
        for (std::size_t j = 0; j < b.rows; ++j) {
            std::int32_t s = 0;
            for (std::size_t p = 0; p < a.cols; ++p)
                s += static_cast<std::int32_t>((a.data[i * a.ld + p] & ma) * (b.data[j * b.ld + p] & mb));
            v[i * b.rows + j] = s;
        }
    write_output(v.data(), a.rows, b.rows, out);
}

} // namespace lowbit::kernels::reference
