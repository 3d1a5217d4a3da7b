// SPDX-License-Identifier: MIT
#pragma once
// The float baseline of the benchmarks: cblas_sgemm with OpenBLAS's own threading, on as many OpenBLAS
// threads as lowbit::num_threads(). kernels::sgemm runs OpenBLAS single-threaded on lowbit's pool instead
// (kernels/gemm.hpp says why); the issues compare against OpenBLAS as it is, so the baselines call it here.
// Without lowbit::blas it is kernels::sgemm (the xsimd fallback).

#include <lowbit/kernels/gemm.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <cstddef>

namespace lowbit_bench {

inline void openblas_sgemm(lowbit::kernels::transpose ta, lowbit::kernels::transpose tb, std::size_t m,
                           std::size_t n, std::size_t k, float alpha, float const* a, std::size_t lda,
                           float const* b, std::size_t ldb, float beta, float* c, std::size_t ldc)
{
#if LOWBIT_WITH_BLAS
#if defined(OPENBLAS_VERSION)
    int const want = static_cast<int>(lowbit::num_threads());
    if (openblas_get_num_threads() != want) openblas_set_num_threads(want);
#endif
    lowbit::kernels::detail::cblas_call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
    lowbit::kernels::sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

} // namespace lowbit_bench
