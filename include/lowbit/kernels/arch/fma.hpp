// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief `fused_fma(x, y, z)`: x * y + z on float batches with a single rounding wherever the target has an
/// FMA instruction. Kernels that must be bit-identical to a scalar `std::fma` reference use it instead of
/// `xsimd::fma`, because xsimd 8.1 has no AVX-512 overload of `fma`: for `avx512f`/`avx512bw` batches it
/// resolves to the generic `x * y + z`, two roundings unless the compiler happens to contract them (tested
/// with GCC 12.2 at -O0: not fused). xsimd 13 does define it; the explicit intrinsic is the same there.
/// SSE2-only builds have no FMA instruction, so this is a multiply and an add there, as in xsimd.
// IWYU pragma: private

#include <xsimd/xsimd.hpp>

#include <type_traits>

#if XSIMD_WITH_AVX512F
#include <immintrin.h>
#endif

namespace lowbit::kernels::detail {

template <class A>
inline xsimd::batch<float, A> fused_fma(xsimd::batch<float, A> const& x, xsimd::batch<float, A> const& y,
                                        xsimd::batch<float, A> const& z) noexcept
{
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_base_of_v<xsimd::avx512f, A>)
        return xsimd::batch<float, A>(_mm512_fmadd_ps(x, y, z));
    else
#endif
        return xsimd::fma(x, y, z);
}

} // namespace lowbit::kernels::detail
