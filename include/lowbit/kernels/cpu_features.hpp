// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Run-time CPU feature detection for the integer GEMM kernels, and the instruction-set choice
/// (`kernels::isa`) that tests and benchmarks can force.
///
/// The integer kernels (binary_gemm, bitserial_gemm, int8_gemm, binary_conv2d) are compiled with the
/// library's baseline flags: their AVX2 and AVX-512 code paths are functions carrying
/// `[[gnu::target(...)]]`, so a baseline x86-64 build still runs AVX-512 VPOPCNTDQ / VNNI code on a CPU
/// that has it. Which path runs is decided here, once per process, from `__builtin_cpu_supports` (GCC's
/// and Clang's run-time CPUID query, which also checks that the OS saves the wider registers). Unlike the
/// pack kernels, which follow the compile flags (xsimd::default_arch), these are bound by arithmetic and
/// gain 5-10x from instructions that a portable build cannot assume (design.md, "Kernels and dispatch").
///
/// @code
/// using namespace lowbit::kernels;
/// isa const best = best_isa(int_kernel::popcount);   // cached: avx512 on a VPOPCNTDQ CPU
/// for (isa i : {isa::scalar, isa::avx2, isa::avx512})
///     if (supports(i, int_kernel::popcount)) { /* binary_gemm(a, b, out, i) ... */ }
/// @endcode

#include <cstdint>

/// 1 where the x86 paths (and their target attributes) are compiled: GCC or Clang on x86-64 / x86.
/// Define it to 0 to build only the scalar paths.
#ifndef LOWBIT_X86_DISPATCH
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define LOWBIT_X86_DISPATCH 1
#else
#define LOWBIT_X86_DISPATCH 0
#endif
#endif

namespace lowbit::kernels {

/// @brief The CPU features the integer kernels care about (all false off x86).
struct cpu_features {
    bool popcnt = false;
    bool avx2 = false;
    bool fma = false;
    bool bmi2 = false;
    bool avx512f = false;
    bool avx512bw = false;
    bool avx512dq = false;
    bool avx512vl = false;
    bool avx512vpopcntdq = false;  ///< vector popcount of 32/64-bit lanes (Ice Lake, Zen 4 and later)
    bool avx512bitalg = false;     ///< vector popcount of 8/16-bit lanes
    bool avx512vnni = false;       ///< vpdpbusd: u8 x s8 dot products of 4 into int32
    bool avxvnni = false;          ///< the VEX-encoded 256-bit vpdpbusd (Alder Lake, Zen 5); GCC builds only
};

/// @brief The features of the running CPU, detected on the first call and cached (thread-safe).
inline cpu_features const& cpu() noexcept
{
    static cpu_features const f = [] {
        cpu_features r;
#if LOWBIT_X86_DISPATCH
        __builtin_cpu_init();
        r.popcnt = __builtin_cpu_supports("popcnt");
        r.avx2 = __builtin_cpu_supports("avx2");
        r.fma = __builtin_cpu_supports("fma");
        r.bmi2 = __builtin_cpu_supports("bmi2");
        r.avx512f = __builtin_cpu_supports("avx512f");
        r.avx512bw = __builtin_cpu_supports("avx512bw");
        r.avx512dq = __builtin_cpu_supports("avx512dq");
        r.avx512vl = __builtin_cpu_supports("avx512vl");
        r.avx512vpopcntdq = __builtin_cpu_supports("avx512vpopcntdq");
        r.avx512bitalg = __builtin_cpu_supports("avx512bitalg");
        r.avx512vnni = __builtin_cpu_supports("avx512vnni");
#if !defined(__clang__)  // Clang 14 does not know the name (GCC 11 added it); no kernel needs it yet
        r.avxvnni = __builtin_cpu_supports("avxvnni");
#endif
#endif
        return r;
    }();
    return f;
}

/// @brief An instruction-set path of the integer kernels. `scalar` is portable C++ (it uses the `popcnt`
/// instruction when the CPU has one); `avx2` and `avx512` are the vector paths.
enum class isa : std::uint8_t { scalar, avx2, avx512 };

/// @brief The kernel families, which need different AVX-512 extensions: Cascade Lake has VNNI but no
/// VPOPCNTDQ, so one CPU can take the avx512 path for int8 and the avx2 path for popcount.
enum class int_kernel : std::uint8_t {
    popcount,  ///< binary_gemm, bitserial_gemm, binary_conv2d: AVX-512 needs VPOPCNTDQ
    int8,      ///< int8_gemm, binary_int8_gemm: AVX-512 needs VNNI
};

/// @brief Whether the running CPU can take path `i` for kernel family `k`.
/// avx2 needs AVX2 + FMA (the float output transform uses FMA); avx512 needs F, BW, DQ, VL plus
/// VPOPCNTDQ (popcount) or VNNI (int8), and AVX2 + FMA for the shared epilogue.
inline bool supports(isa i, int_kernel k) noexcept
{
    cpu_features const& f = cpu();
    bool const avx2 = f.avx2 && f.fma;
    switch (i) {
    case isa::scalar: return true;
    case isa::avx2: return avx2;
    case isa::avx512: {
        bool const base = avx2 && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl;
        return base && (k == int_kernel::popcount ? f.avx512vpopcntdq : f.avx512vnni);
    }
    }
    return false;
}

/// @brief The fastest path the running CPU supports for kernel family `k` (computed once, cached).
inline isa best_isa(int_kernel k) noexcept
{
    static isa const best[2] = {
        supports(isa::avx512, int_kernel::popcount) ? isa::avx512
        : supports(isa::avx2, int_kernel::popcount) ? isa::avx2
                                                    : isa::scalar,
        supports(isa::avx512, int_kernel::int8) ? isa::avx512
        : supports(isa::avx2, int_kernel::int8) ? isa::avx2
                                                : isa::scalar,
    };
    return best[static_cast<int>(k)];
}

/// @brief "scalar", "avx2" or "avx512", for logs and benchmark names.
constexpr char const* isa_name(isa i) noexcept
{
    switch (i) {
    case isa::scalar: return "scalar";
    case isa::avx2: return "avx2";
    case isa::avx512: return "avx512";
    }
    return "?";
}

} // namespace lowbit::kernels
