// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Scalar reference of the integer GEMMs' output transforms (kernels/int_gemm_output.hpp): applies
/// one to a plain m x n matrix of int32 results, element by element.

#include <lowbit/kernels/int_gemm_output.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace lowbit::kernels::reference {

/// @brief out(i, j) = v[i * n + j].
inline void write_output(std::int32_t const* v, std::size_t m, std::size_t n, int32_output const& out) noexcept
{
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) out.data[i * out.ld + j] = v[i * n + j];
}

/// @brief out(i, j) = fma(float(v), scale[j], bias[j]).
inline void write_output(std::int32_t const* v, std::size_t m, std::size_t n, float_output const& out) noexcept
{
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j)
            out.data[i * out.ld + j] = std::fma(static_cast<float>(v[i * n + j]), out.scale ? out.scale[j] : 1.0f,
                                                out.bias ? out.bias[j] : 0.0f);
}

/// @brief Bit j of row i = (v >= threshold[j]) xor flip bit j; the bits of the row's last word past n are 0.
inline void write_output(std::int32_t const* v, std::size_t m, std::size_t n, sign_output const& out) noexcept
{
    std::size_t const words = (n + 63) / 64;
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t w = 0; w < words; ++w) out.data[i * out.ld + w] = 0;
        for (std::size_t j = 0; j < n; ++j) {
            bool bit = v[i * n + j] >= out.threshold[j];
            if (out.flip && ((out.flip[j / 64] >> (j % 64)) & 1u)) bit = !bit;
            if (bit) out.data[i * out.ld + j / 64] |= std::uint64_t{1} << (j % 64);
        }
    }
}

} // namespace lowbit::kernels::reference
