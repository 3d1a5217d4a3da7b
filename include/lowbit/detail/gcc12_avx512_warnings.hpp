// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Silences GCC 12's false -Wmaybe-uninitialized in its own AVX-512 headers around lowbit's kernels.
///
/// GCC 12's avx512fintrin.h returns a self-initialised `__Y` from `_mm512_undefined_*()`, the pass-through
/// operand of many intrinsics, and -Wmaybe-uninitialized flags it once the intrinsic is inlined into a kernel
/// (GCC PR 105593, fixed in GCC 13). The macros bracket the kernels that reach those intrinsics through xsimd:
/// GCC matches a pragma against every location of the inlining chain, so the kernels' callers are covered too.
/// With any other compiler they expand to nothing.
// IWYU pragma: private

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#define LOWBIT_GCC12_AVX512_WARNINGS_OFF                                                                      \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define LOWBIT_GCC12_AVX512_WARNINGS_ON _Pragma("GCC diagnostic pop")
#else
#define LOWBIT_GCC12_AVX512_WARNINGS_OFF
#define LOWBIT_GCC12_AVX512_WARNINGS_ON
#endif
