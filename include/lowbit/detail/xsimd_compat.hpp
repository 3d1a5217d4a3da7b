// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The one place that knows about xsimd version differences (Debian's 8.1 vs ConanCenter's 13.x).
// IWYU pragma: private

#include <xsimd/xsimd.hpp>

namespace lowbit::detail {

#if XSIMD_VERSION_MAJOR >= 14
using generic_arch = xsimd::common;
#else
using generic_arch = xsimd::generic;
#endif

/// Horizontal sum of a batch: `hadd` in xsimd 8, `reduce_add` from xsimd 9 on.
template <class T, class A>
inline T reduce_add(xsimd::batch<T, A> const& b) noexcept
{
#if XSIMD_VERSION_MAJOR >= 9
    return xsimd::reduce_add(b);
#else
    return xsimd::hadd(b);
#endif
}

/// Name of an xsimd architecture tag, for benchmark contexts and logs (xsimd 8.1's generic has no name()).
template <class A>
constexpr char const* arch_name() noexcept
{
    if constexpr (requires { A::name(); })
        return A::name();
    else
        return "generic";
}

} // namespace lowbit::detail
