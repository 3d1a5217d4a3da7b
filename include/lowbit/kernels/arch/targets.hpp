// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The instruction sets of the run-time dispatched paths, named once: `[[LOWBIT_TARGET_AVX2]]` and so
/// on mark the functions compiled for them (GCC and Clang's `target` attribute), so that a baseline x86-64
/// build still carries them and kernels/cpu_features.hpp picks one at run time. Each path's set is what its
/// tile code and epilogue use; they must match wherever one always_inline function calls another.
// IWYU pragma: private

/// AVX2 with FMA: the int8 path (vpmaddwd) and the epilogues' 8-lane stores.
#define LOWBIT_TARGET_AVX2 gnu::target("avx2,fma")
/// AVX2 and popcnt: the popcount path (nibble-table counts) with its scalar tails.
#define LOWBIT_TARGET_AVX2_POPCNT gnu::target("avx2,fma,popcnt")
/// AVX-512 F/BW/DQ/VL: the epilogues' 16-lane stores shared by the AVX-512 paths.
#define LOWBIT_TARGET_AVX512 gnu::target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")
/// AVX-512 VNNI: the int8 path (vpdpbusd).
#define LOWBIT_TARGET_AVX512_VNNI gnu::target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")
/// AVX-512 VPOPCNTDQ: the popcount path (vpopcntd).
#define LOWBIT_TARGET_AVX512_VPOPCNTDQ gnu::target("avx512f,avx512bw,avx512dq,avx512vl,avx512vpopcntdq,avx2,fma,popcnt")
/// The popcnt instruction alone: the scalar popcount path's second compilation.
#define LOWBIT_TARGET_POPCNT gnu::target("popcnt")
