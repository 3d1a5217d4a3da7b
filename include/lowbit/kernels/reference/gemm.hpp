// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Scalar reference single-precision GEMM: a triple loop, written to be obviously correct. The xsimd
/// fallback in kernels/gemm.hpp performs the same float operations in the same order, so on a build with
/// hardware FMA (`__FMA__`) it is bit-identical to this one (tests/kernels/test_gemm.cpp checks that).
///
/// The exact arithmetic, which kernels/gemm.hpp must copy:
/// - if alpha == 0 or k == 0 (BLAS's quick return, A and B are not read): c = beta == 0 ? 0 : beta * c;
/// - otherwise acc = 0, then acc = fma(op(A)(i,p), op(B)(p,j), acc) for p = 0, 1, ..., k-1 (increasing p),
///   then ab = alpha * acc and c = beta == 0 ? ab : fma(beta, c, ab).
/// beta == 0 never reads C, so NaN or garbage in C is overwritten, as BLAS specifies. The final step calls
/// std::fma explicitly rather than writing `ab + beta * c`, whose contraction into an FMA would depend on
/// -ffp-contract and could differ between this scalar loop and the vector code.

#include <cmath>
#include <cstddef>

namespace lowbit::kernels {

/// @brief Whether a GEMM operand is used as stored (`no`) or transposed (`yes`), as CblasNoTrans / CblasTrans.
enum class transpose : bool { no, yes };

} // namespace lowbit::kernels

namespace lowbit::kernels::reference {

/// @brief C = alpha * op(A) * op(B) + beta * C, row-major. op(A) is m x k, op(B) is k x n, C is m x n;
/// lda, ldb, ldc are the distances in elements between consecutive stored rows of A, B and C.
inline void sgemm(transpose ta, transpose tb, std::size_t m, std::size_t n, std::size_t k, float alpha,
                  float const* a, std::size_t lda, float const* b, std::size_t ldb, float beta, float* c,
                  std::size_t ldc) noexcept
{
    if (m == 0 || n == 0) return;
    if (alpha == 0.0f || k == 0) {
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            float acc = 0.0f;
            for (std::size_t p = 0; p < k; ++p) {
                float const av = ta == transpose::no ? a[i * lda + p] : a[p * lda + i];
                float const bv = tb == transpose::no ? b[p * ldb + j] : b[j * ldb + p];
                acc = std::fma(av, bv, acc);
            }
            float const ab = alpha * acc;
            c[i * ldc + j] = beta == 0.0f ? ab : std::fma(beta, c[i * ldc + j], ab);
        }
}

} // namespace lowbit::kernels::reference
