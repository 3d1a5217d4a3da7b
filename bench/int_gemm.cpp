// SPDX-License-Identifier: MIT
// Google Benchmark suite for the integer GEMMs (issue 5): binary (xor-popcount), bit-serial, int8 and binary
// convolution, against OpenBLAS sgemm with its own threading (bench/support/openblas_native.hpp) in the same binary.
//
// Counters: MACs = multiply-accumulates per second (one +-1 pair for the binary kernels, so a 512-bit
// xor+popcount+add counts 512), GOPS = 2 x MACs / 1e9 (the usual 2 m n k / s). Both are rates, per second of
// wall time (UseRealTime).
//   (a) bound/...     register-only loops: the xor+popcount+add instruction bound of this CPU (AVX-512
//                      VPOPCNTDQ; AVX2 nibble-table equivalent), and vpdpbusd for int8;
//   (b) micro/...     the binary microkernel on L1-resident panels (6 rows x 64 columns x K bits);
//   (c) binary_gemm/  m = n = k in {256, 1024, 4096}, 1 and 2 threads, every supported path;
//   (d) sgemm/        the same shapes and threads through cblas_sgemm with OpenBLAS threading;
//   (e) mlp/          the MLP's layers 784->1024, 1024->1024, 1024->10 at batch 1 and 256;
//   (f) bitserial/    2x2 and 4x4 bits at 1024^3;  (g) int8/  u8 x s8 at 1024^3;
//   (h) conv/         the cnn's convolutions on 28x28 inputs (lowbit::nn::cnn), binary (im2col into bits +
//                      binary GEMM) and float (nn::conv2d's im2col + sgemm).
// Threads: lowbit::set_num_threads, which openblas_sgemm passes on to OpenBLAS (as bench/gemm.cpp).
//
//   cmake --preset bench && cmake --build --preset bench --target bench_int_gemm
//   env -u OPENBLAS_CORETYPE build/bench/bench/bench_int_gemm --benchmark_min_time=0.2
#include <lowbit/kernels/arch/int8_avx512_vnni.hpp>
#include <lowbit/kernels/arch/popcount_avx2.hpp>
#include <lowbit/kernels/arch/popcount_avx512.hpp>
#include <lowbit/kernels/binary_conv2d.hpp>
#include <lowbit/kernels/binary_gemm.hpp>
#include <lowbit/kernels/bitserial_gemm.hpp>
#include <lowbit/kernels/cpu_features.hpp>
#include <lowbit/kernels/gemm.hpp>
#include <lowbit/kernels/int8_gemm.hpp>
#include <lowbit/nn/conv2d.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include "support/openblas_native.hpp"

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#if LOWBIT_X86_DISPATCH
#include <immintrin.h>
#endif

namespace {

namespace k = lowbit::kernels;
using k::isa;

void set_rates(benchmark::State& state, double macs_per_iteration)
{
    state.counters["MACs"] = benchmark::Counter(macs_per_iteration, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::OneK::kIs1000);
    state.counters["GOPS"] = benchmark::Counter(2.0 * macs_per_iteration / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

/// Sets the thread count for one benchmark and restores it afterwards.
struct threads {
    unsigned before = lowbit::num_threads();
    explicit threads(std::int64_t n) { lowbit::set_num_threads(static_cast<unsigned>(n)); }
    ~threads() { lowbit::set_num_threads(before); }
};

std::vector<std::uint64_t> random_words(std::size_t n, std::uint64_t seed)
{
    std::mt19937_64 rng(seed);
    std::vector<std::uint64_t> v(n);
    for (auto& w : v) w = rng();
    return v;
}

template <class T>
std::vector<T> random_bytes(std::size_t n, std::uint64_t seed, unsigned mask = 0xFF)
{
    std::mt19937_64 rng(seed);
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(rng() & mask);
    return v;
}

std::vector<float> random_floats(std::size_t n, std::uint64_t seed)
{
    std::mt19937 rng(static_cast<std::uint32_t>(seed));
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = u(rng);
    return v;
}

bool skip_unless(benchmark::State& state, isa i, k::int_kernel kind)
{
    if (k::supports(i, kind)) return false;
    state.SkipWithError("this CPU lacks the instruction set");
    return true;
}

// ---------------------------------------------------------------------------------------------------------
// (a) Register-only instruction bounds, in inline assembly so that the loop body is exactly the instructions
// counted (compiled from intrinsics, GCC moved accumulators through the stack around the barriers that keep
// it from hoisting the loop-invariant work). 4 A and 4 B registers, 16 independent accumulators; the
// register contents do not matter (the instructions' timing does not depend on the data).
// ---------------------------------------------------------------------------------------------------------
#if LOWBIT_X86_DISPATCH
/// 16 x (vpxorq, vpopcntq, vpaddq) on zmm per iteration: 16 x 512 binary multiply-accumulates.
[[gnu::target("avx512f,avx512bw,avx512vpopcntdq"), gnu::noinline]] void bound_avx512(std::int64_t iterations)
{
    asm volatile("1:\n\t"
             "vpxorq %%zmm4, %%zmm0, %%zmm24\n\t"
             "vpopcntq %%zmm24, %%zmm24\n\t"
             "vpaddq %%zmm24, %%zmm8, %%zmm8\n\t"
             "vpxorq %%zmm5, %%zmm0, %%zmm25\n\t"
             "vpopcntq %%zmm25, %%zmm25\n\t"
             "vpaddq %%zmm25, %%zmm9, %%zmm9\n\t"
             "vpxorq %%zmm6, %%zmm0, %%zmm26\n\t"
             "vpopcntq %%zmm26, %%zmm26\n\t"
             "vpaddq %%zmm26, %%zmm10, %%zmm10\n\t"
             "vpxorq %%zmm7, %%zmm0, %%zmm27\n\t"
             "vpopcntq %%zmm27, %%zmm27\n\t"
             "vpaddq %%zmm27, %%zmm11, %%zmm11\n\t"
             "vpxorq %%zmm4, %%zmm1, %%zmm28\n\t"
             "vpopcntq %%zmm28, %%zmm28\n\t"
             "vpaddq %%zmm28, %%zmm12, %%zmm12\n\t"
             "vpxorq %%zmm5, %%zmm1, %%zmm29\n\t"
             "vpopcntq %%zmm29, %%zmm29\n\t"
             "vpaddq %%zmm29, %%zmm13, %%zmm13\n\t"
             "vpxorq %%zmm6, %%zmm1, %%zmm30\n\t"
             "vpopcntq %%zmm30, %%zmm30\n\t"
             "vpaddq %%zmm30, %%zmm14, %%zmm14\n\t"
             "vpxorq %%zmm7, %%zmm1, %%zmm31\n\t"
             "vpopcntq %%zmm31, %%zmm31\n\t"
             "vpaddq %%zmm31, %%zmm15, %%zmm15\n\t"
             "vpxorq %%zmm4, %%zmm2, %%zmm24\n\t"
             "vpopcntq %%zmm24, %%zmm24\n\t"
             "vpaddq %%zmm24, %%zmm16, %%zmm16\n\t"
             "vpxorq %%zmm5, %%zmm2, %%zmm25\n\t"
             "vpopcntq %%zmm25, %%zmm25\n\t"
             "vpaddq %%zmm25, %%zmm17, %%zmm17\n\t"
             "vpxorq %%zmm6, %%zmm2, %%zmm26\n\t"
             "vpopcntq %%zmm26, %%zmm26\n\t"
             "vpaddq %%zmm26, %%zmm18, %%zmm18\n\t"
             "vpxorq %%zmm7, %%zmm2, %%zmm27\n\t"
             "vpopcntq %%zmm27, %%zmm27\n\t"
             "vpaddq %%zmm27, %%zmm19, %%zmm19\n\t"
             "vpxorq %%zmm4, %%zmm3, %%zmm28\n\t"
             "vpopcntq %%zmm28, %%zmm28\n\t"
             "vpaddq %%zmm28, %%zmm20, %%zmm20\n\t"
             "vpxorq %%zmm5, %%zmm3, %%zmm29\n\t"
             "vpopcntq %%zmm29, %%zmm29\n\t"
             "vpaddq %%zmm29, %%zmm21, %%zmm21\n\t"
             "vpxorq %%zmm6, %%zmm3, %%zmm30\n\t"
             "vpopcntq %%zmm30, %%zmm30\n\t"
             "vpaddq %%zmm30, %%zmm22, %%zmm22\n\t"
             "vpxorq %%zmm7, %%zmm3, %%zmm31\n\t"
             "vpopcntq %%zmm31, %%zmm31\n\t"
             "vpaddq %%zmm31, %%zmm23, %%zmm23\n\t"
             "dec %0\n\t"
             "jnz 1b\n\t"
             : "+r"(iterations)
             :
             : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "cc");
}

/// AVX2: 4 x (xor, then the nibble-table popcount: and, shift, and, 2 x vpshufb, add; and the byte
/// accumulation), the 8 instructions per 256 bits of arch/popcount_avx2.hpp: 4 x 256 multiply-accumulates.
[[gnu::target("avx2"), gnu::noinline]] void bound_avx2(std::int64_t iterations)
{
    asm volatile("1:\n\t"
             "vpxor %%ymm2, %%ymm0, %%ymm8\n\t"
             "vpand %%ymm15, %%ymm8, %%ymm9\n\t"
             "vpsrlw $4, %%ymm8, %%ymm10\n\t"
             "vpand %%ymm15, %%ymm10, %%ymm10\n\t"
             "vpshufb %%ymm9, %%ymm14, %%ymm9\n\t"
             "vpshufb %%ymm10, %%ymm14, %%ymm10\n\t"
             "vpaddb %%ymm10, %%ymm9, %%ymm9\n\t"
             "vpaddb %%ymm9, %%ymm4, %%ymm4\n\t"
             "vpxor %%ymm3, %%ymm0, %%ymm11\n\t"
             "vpand %%ymm15, %%ymm11, %%ymm12\n\t"
             "vpsrlw $4, %%ymm11, %%ymm13\n\t"
             "vpand %%ymm15, %%ymm13, %%ymm13\n\t"
             "vpshufb %%ymm12, %%ymm14, %%ymm12\n\t"
             "vpshufb %%ymm13, %%ymm14, %%ymm13\n\t"
             "vpaddb %%ymm13, %%ymm12, %%ymm12\n\t"
             "vpaddb %%ymm12, %%ymm5, %%ymm5\n\t"
             "vpxor %%ymm2, %%ymm1, %%ymm8\n\t"
             "vpand %%ymm15, %%ymm8, %%ymm9\n\t"
             "vpsrlw $4, %%ymm8, %%ymm10\n\t"
             "vpand %%ymm15, %%ymm10, %%ymm10\n\t"
             "vpshufb %%ymm9, %%ymm14, %%ymm9\n\t"
             "vpshufb %%ymm10, %%ymm14, %%ymm10\n\t"
             "vpaddb %%ymm10, %%ymm9, %%ymm9\n\t"
             "vpaddb %%ymm9, %%ymm6, %%ymm6\n\t"
             "vpxor %%ymm3, %%ymm1, %%ymm11\n\t"
             "vpand %%ymm15, %%ymm11, %%ymm12\n\t"
             "vpsrlw $4, %%ymm11, %%ymm13\n\t"
             "vpand %%ymm15, %%ymm13, %%ymm13\n\t"
             "vpshufb %%ymm12, %%ymm14, %%ymm12\n\t"
             "vpshufb %%ymm13, %%ymm14, %%ymm13\n\t"
             "vpaddb %%ymm13, %%ymm12, %%ymm12\n\t"
             "vpaddb %%ymm12, %%ymm7, %%ymm7\n\t"
             "dec %0\n\t"
             "jnz 1b\n\t"
             : "+r"(iterations)
             :
             : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
}

/// 16 x vpdpbusd on zmm per iteration: 16 x 64 u8 x s8 multiply-adds.
[[gnu::target("avx512f,avx512bw,avx512vnni"), gnu::noinline]] void bound_vnni(std::int64_t iterations)
{
    asm volatile("1:\n\t"
             "vpdpbusd %%zmm4, %%zmm0, %%zmm8\n\t"
             "vpdpbusd %%zmm5, %%zmm0, %%zmm9\n\t"
             "vpdpbusd %%zmm6, %%zmm0, %%zmm10\n\t"
             "vpdpbusd %%zmm7, %%zmm0, %%zmm11\n\t"
             "vpdpbusd %%zmm4, %%zmm1, %%zmm12\n\t"
             "vpdpbusd %%zmm5, %%zmm1, %%zmm13\n\t"
             "vpdpbusd %%zmm6, %%zmm1, %%zmm14\n\t"
             "vpdpbusd %%zmm7, %%zmm1, %%zmm15\n\t"
             "vpdpbusd %%zmm4, %%zmm2, %%zmm16\n\t"
             "vpdpbusd %%zmm5, %%zmm2, %%zmm17\n\t"
             "vpdpbusd %%zmm6, %%zmm2, %%zmm18\n\t"
             "vpdpbusd %%zmm7, %%zmm2, %%zmm19\n\t"
             "vpdpbusd %%zmm4, %%zmm3, %%zmm20\n\t"
             "vpdpbusd %%zmm5, %%zmm3, %%zmm21\n\t"
             "vpdpbusd %%zmm6, %%zmm3, %%zmm22\n\t"
             "vpdpbusd %%zmm7, %%zmm3, %%zmm23\n\t"
             "dec %0\n\t"
             "jnz 1b\n\t"
             : "+r"(iterations)
             :
             : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "cc");
}

/// 16 x vdpbf16ps on zmm per iteration: 16 x 32 bf16 x bf16 multiply-adds (16 float lanes, 2 products each).
/// The registers start at zero, so no input or sum is a denormal or NaN (vdpbf16ps flushes denormals anyway;
/// a float FMA loop on uninitialised registers ran 100x slower, on microcode assists).
[[gnu::target("avx512f,avx512bw,avx512bf16"), gnu::noinline]] void bound_bf16(std::int64_t iterations)
{
    asm volatile("vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
                 "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
                 "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
                 "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
                 "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
                 "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
                 "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
                 "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
                 "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
                 "vpxord %%zmm9, %%zmm9, %%zmm9\n\t"
                 "vpxord %%zmm10, %%zmm10, %%zmm10\n\t"
                 "vpxord %%zmm11, %%zmm11, %%zmm11\n\t"
                 "vpxord %%zmm12, %%zmm12, %%zmm12\n\t"
                 "vpxord %%zmm13, %%zmm13, %%zmm13\n\t"
                 "vpxord %%zmm14, %%zmm14, %%zmm14\n\t"
                 "vpxord %%zmm15, %%zmm15, %%zmm15\n\t"
                 "vpxord %%zmm16, %%zmm16, %%zmm16\n\t"
                 "vpxord %%zmm17, %%zmm17, %%zmm17\n\t"
                 "vpxord %%zmm18, %%zmm18, %%zmm18\n\t"
                 "vpxord %%zmm19, %%zmm19, %%zmm19\n\t"
                 "vpxord %%zmm20, %%zmm20, %%zmm20\n\t"
                 "vpxord %%zmm21, %%zmm21, %%zmm21\n\t"
                 "vpxord %%zmm22, %%zmm22, %%zmm22\n\t"
                 "vpxord %%zmm23, %%zmm23, %%zmm23\n\t"
                 "1:\n\t"
             "vdpbf16ps %%zmm4, %%zmm0, %%zmm8\n\t"
             "vdpbf16ps %%zmm5, %%zmm0, %%zmm9\n\t"
             "vdpbf16ps %%zmm6, %%zmm0, %%zmm10\n\t"
             "vdpbf16ps %%zmm7, %%zmm0, %%zmm11\n\t"
             "vdpbf16ps %%zmm4, %%zmm1, %%zmm12\n\t"
             "vdpbf16ps %%zmm5, %%zmm1, %%zmm13\n\t"
             "vdpbf16ps %%zmm6, %%zmm1, %%zmm14\n\t"
             "vdpbf16ps %%zmm7, %%zmm1, %%zmm15\n\t"
             "vdpbf16ps %%zmm4, %%zmm2, %%zmm16\n\t"
             "vdpbf16ps %%zmm5, %%zmm2, %%zmm17\n\t"
             "vdpbf16ps %%zmm6, %%zmm2, %%zmm18\n\t"
             "vdpbf16ps %%zmm7, %%zmm2, %%zmm19\n\t"
             "vdpbf16ps %%zmm4, %%zmm3, %%zmm20\n\t"
             "vdpbf16ps %%zmm5, %%zmm3, %%zmm21\n\t"
             "vdpbf16ps %%zmm6, %%zmm3, %%zmm22\n\t"
             "vdpbf16ps %%zmm7, %%zmm3, %%zmm23\n\t"
             "dec %0\n\t"
             "jnz 1b\n\t"
             : "+r"(iterations)
             :
             : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "cc");
}
#endif

/// The register-only loops: 0 xor+popcount+add (AVX-512), 1 its AVX2 form, 2 vpdpbusd, 3 vdpbf16ps.
enum bound_loop : int { popcount_avx512 = 0, popcount_avx2 = 1, vnni = 2, bf16 = 3 };

#if LOWBIT_X86_DISPATCH
/// Skips the benchmark unless the CPU runs loop `which`; else its multiply-adds per iteration.
double bound_setup(benchmark::State& state, int which)
{
    switch (which) {
    case popcount_avx512: return skip_unless(state, isa::avx512, k::int_kernel::popcount) ? 0.0 : 16.0 * 512;
    case popcount_avx2: return skip_unless(state, isa::avx2, k::int_kernel::popcount) ? 0.0 : 4.0 * 256;
    case vnni: return skip_unless(state, isa::avx512, k::int_kernel::int8) ? 0.0 : 16.0 * 64;
    default:
        if (__builtin_cpu_supports("avx512bf16")) return 16.0 * 32;
        state.SkipWithError("this CPU lacks AVX512-BF16");
        return 0.0;
    }
}

void bound_run(int which, std::int64_t iterations)
{
    switch (which) {
    case popcount_avx512: bound_avx512(iterations); break;
    case popcount_avx2: bound_avx2(iterations); break;
    case vnni: bound_vnni(iterations); break;
    default: bound_bf16(iterations); break;
    }
}
#endif

void bm_bound(benchmark::State& state, int which)
{
#if LOWBIT_X86_DISPATCH
    constexpr std::int64_t inner = 4096;
    double const per_iteration = bound_setup(state, which);
    if (per_iteration == 0.0) return;
    for (auto _ : state) bound_run(which, inner);
    set_rates(state, double(inner) * per_iteration);
#else
    (void)which;
    state.SkipWithError("x86 only");
#endif
}

/// The same loops on `threads` threads at once (one long loop each): the peak of that many cores.
void bm_bound_threads(benchmark::State& state, int which)
{
#if LOWBIT_X86_DISPATCH
    double const per_iteration = bound_setup(state, which);
    if (per_iteration == 0.0) return;
    threads const t(state.range(0));
    constexpr std::int64_t inner = std::int64_t{1} << 18;
    auto const n = static_cast<std::size_t>(state.range(0));
    for (auto _ : state) lowbit::parallel_for(n, 1, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) bound_run(which, inner);
    });
    set_rates(state, double(n) * double(inner) * per_iteration);
#else
    (void)which;
    state.SkipWithError("x86 only");
#endif
}

// ---------------------------------------------------------------------------------------------------------
// (b) The binary microkernel on L1-resident panels: 6 rows x 4 panels (64 columns) x kw 32-bit words.
// ---------------------------------------------------------------------------------------------------------
#if LOWBIT_X86_DISPATCH
[[gnu::target("avx2,fma,popcnt")]] void micro_avx2(std::size_t kw, std::uint32_t const* a, std::uint32_t const* b)
{
    // The AVX2 equivalent of the tile: 6 rows (as 4 + 2) x 4 panels.
    __m256i sum[4][2];
    for (std::size_t j = 0; j < 4; ++j) {
        k::detail::avx2::popcount_subtile<4, true>(kw, a, 6, b + j * kw * 16, sum);
        benchmark::DoNotOptimize(sum);
        k::detail::avx2::popcount_subtile<2, true>(kw, a + 4, 6, b + j * kw * 16, sum);
        benchmark::DoNotOptimize(sum);
    }
}

[[gnu::target("avx512f,avx512bw,avx512dq,avx512vl,avx512vpopcntdq,avx2,fma,popcnt")]] void
micro_avx512(k::detail::popcount_job const& job, std::uint32_t const* a, std::uint32_t const* b, bool with_store)
{
    if (with_store) {  // the tile and its int32 output transform
        k::detail::avx512::popcount_tile_store<1, 1, 6, 4>(job, a, b, 0, 0, 64);
    } else {
        __m512i acc[6][4];
        k::detail::avx512::popcount_tile<6, 4, true>(job.kw, a, 6, b, job.kw * 16, acc);
        benchmark::DoNotOptimize(acc);
    }
}
#endif

void bm_micro(benchmark::State& state, isa which, bool with_store)
{
#if LOWBIT_X86_DISPATCH
    if (skip_unless(state, which, k::int_kernel::popcount)) return;
    auto const kw = static_cast<std::size_t>(state.range(0));
    auto const a = random_bytes<std::uint32_t>(kw * 6, 1, ~0u), b = random_bytes<std::uint32_t>(kw * 64, 2, ~0u);
    std::vector<std::int32_t> c(6 * 64);
    k::detail::popcount_job job;
    job.kw = kw;
    job.m = 6;
    job.n = 64;
    job.k = kw * 32;
    job.out = k::detail::lower_output(k::int32_output{c.data(), 64}, 64);
    for (auto _ : state) {
        if (which == isa::avx512)
            micro_avx512(job, a.data(), b.data(), with_store);
        else
            micro_avx2(kw, a.data(), b.data());
        benchmark::ClobberMemory();
    }
    set_rates(state, 6.0 * 64.0 * double(kw) * 32.0);
#else
    (void)which, (void)with_store;
    state.SkipWithError("x86 only");
#endif
}

// ---------------------------------------------------------------------------------------------------------
// (c) binary GEMM, (d) sgemm, (f) bit-serial, (g) int8: square m = n = k.
// ---------------------------------------------------------------------------------------------------------
void bm_binary_gemm(benchmark::State& state, isa which)
{
    if (skip_unless(state, which, k::int_kernel::popcount)) return;
    auto const n = static_cast<std::size_t>(state.range(0));
    threads const t(state.range(1));
    std::size_t const ld = k::words_for_bits(n);
    auto const a = random_words(n * ld, 1), b = random_words(n * ld, 2);
    k::binary_packed_b const packed(k::bit_matrix_view{b.data(), n, n, ld});  // weights: packed once
    std::vector<std::int32_t> c(n * n);
    k::bit_matrix_view const av{a.data(), n, n, ld};
    k::binary_gemm(av, packed, k::int32_output{c.data(), n}, which);  // warm-up: pool, buffers
    for (auto _ : state) {
        k::binary_gemm(av, packed, k::int32_output{c.data(), n}, which);
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    set_rates(state, double(n) * double(n) * double(n));
}

/// C = A W^T with W [n, k] as a dense layer stores it.
void sgemm_layer(std::size_t m, std::size_t n, std::size_t kk, float const* a, float const* w, float* c)
{
    lowbit_bench::openblas_sgemm(k::transpose::no, k::transpose::yes, m, n, kk, 1.0f, a, kk, w, kk, 0.0f, c, n);
}

void bm_sgemm(benchmark::State& state)
{
    auto const n = static_cast<std::size_t>(state.range(0));
    threads const t(state.range(1));
    auto const a = random_floats(n * n, 1), b = random_floats(n * n, 2);
    std::vector<float> c(n * n);
    sgemm_layer(n, n, n, a.data(), b.data(), c.data());
    for (auto _ : state) {
        sgemm_layer(n, n, n, a.data(), b.data(), c.data());
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    set_rates(state, double(n) * double(n) * double(n));
}

void bm_bitserial(benchmark::State& state, isa which, int bits)
{
    if (skip_unless(state, which, k::int_kernel::popcount)) return;
    auto const n = static_cast<std::size_t>(state.range(0));
    threads const t(state.range(1));
    unsigned const mask = (1u << bits) - 1u;
    auto const a = random_bytes<std::uint8_t>(n * n, 1, mask), b = random_bytes<std::uint8_t>(n * n, 2, mask);
    k::bitserial_packed_b const packed(k::matrix_view<std::uint8_t>{b.data(), n, n, n}, bits);
    k::matrix_view<std::uint8_t> const av{a.data(), n, n, n};
    std::vector<std::int32_t> c(n * n);
    k::bitserial_gemm(av, bits, packed, k::int32_output{c.data(), n}, which);
    for (auto _ : state) {
        k::bitserial_gemm(av, bits, packed, k::int32_output{c.data(), n}, which);
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    set_rates(state, double(n) * double(n) * double(n));
}

void bm_int8(benchmark::State& state, isa which)
{
    if (skip_unless(state, which, k::int_kernel::int8)) return;
    auto const n = static_cast<std::size_t>(state.range(0));
    threads const t(state.range(1));
    auto const a = random_bytes<std::uint8_t>(n * n, 1);
    auto const b = random_bytes<std::int8_t>(n * n, 2);
    k::int8_packed_b const packed(k::matrix_view<std::int8_t>{b.data(), n, n, n});
    k::matrix_view<std::uint8_t> const av{a.data(), n, n, n};
    std::vector<std::int32_t> c(n * n);
    k::int8_gemm(av, packed, k::int32_output{c.data(), n}, which);
    for (auto _ : state) {
        k::int8_gemm(av, packed, k::int32_output{c.data(), n}, which);
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    set_rates(state, double(n) * double(n) * double(n));
}

// ---------------------------------------------------------------------------------------------------------
// (e) MLP layers: activations [batch, in] x weights [out, in]. Arguments: in, out, batch, threads.
// ---------------------------------------------------------------------------------------------------------
enum class layer_kind { binary, binary_int8, sgemm };

void bm_mlp(benchmark::State& state, layer_kind kind)
{
    auto const in = static_cast<std::size_t>(state.range(0)), out = static_cast<std::size_t>(state.range(1));
    auto const batch = static_cast<std::size_t>(state.range(2));
    threads const t(state.range(3));
    if (kind == layer_kind::sgemm) {
        auto const x = random_floats(batch * in, 1), w = random_floats(out * in, 2);
        std::vector<float> y(batch * out);
        sgemm_layer(batch, out, in, x.data(), w.data(), y.data());
        for (auto _ : state) {
            sgemm_layer(batch, out, in, x.data(), w.data(), y.data());
            benchmark::DoNotOptimize(y.data());
            benchmark::ClobberMemory();
        }
    } else if (kind == layer_kind::binary) {
        std::size_t const ld = k::words_for_bits(in);
        auto const x = random_words(batch * ld, 1), w = random_words(out * ld, 2);
        k::binary_packed_b const packed(k::bit_matrix_view{w.data(), out, in, ld});
        k::bit_matrix_view const xv{x.data(), batch, in, ld};
        std::vector<float> y(batch * out), scale(out, 0.01f);
        k::binary_gemm(xv, packed, k::float_output{y.data(), out, scale.data(), nullptr});
        for (auto _ : state) {
            k::binary_gemm(xv, packed, k::float_output{y.data(), out, scale.data(), nullptr});
            benchmark::DoNotOptimize(y.data());
            benchmark::ClobberMemory();
        }
    } else {
        std::size_t const ld = k::words_for_bits(in);
        auto const x = random_bytes<std::uint8_t>(batch * in, 1);
        auto const w = random_words(out * ld, 2);
        k::int8_packed_b const packed(k::bit_matrix_view{w.data(), out, in, ld});
        k::matrix_view<std::uint8_t> const xv{x.data(), batch, in, in};
        std::vector<float> y(batch * out), scale(out, 0.01f);
        k::int8_gemm(xv, packed, k::float_output{y.data(), out, scale.data(), nullptr});
        for (auto _ : state) {
            k::int8_gemm(xv, packed, k::float_output{y.data(), out, scale.data(), nullptr});
            benchmark::DoNotOptimize(y.data());
            benchmark::ClobberMemory();
        }
    }
    set_rates(state, double(batch) * double(in) * double(out));
}

// ---------------------------------------------------------------------------------------------------------
// (h) The cnn's convolutions (3x3, stride 1, padding 1) on a batch. Arguments: in channels, out channels,
// size, batch, threads.
// ---------------------------------------------------------------------------------------------------------
void bm_conv(benchmark::State& state, bool binary)
{
    auto const c = static_cast<std::size_t>(state.range(0)), f = static_cast<std::size_t>(state.range(1));
    auto const hw = static_cast<std::size_t>(state.range(2)), batch = static_cast<std::size_t>(state.range(3));
    threads const t(state.range(4));
    std::size_t const pixels = hw * hw, patch = c * 9;
    if (binary) {
        k::binary_conv2d_shape const s{c, hw, hw, f, 3, 1, 1};
        std::size_t const ld = k::words_for_bits(patch);
        auto const x = random_words(batch * pixels * k::words_for_bits(c), 1), w = random_words(f * ld, 2);
        k::binary_conv2d_weights const wb(s, k::bit_matrix_view{w.data(), f, patch, ld});
        k::bit_matrix_view const xv{x.data(), batch * pixels, c, k::words_for_bits(c)};
        std::vector<std::int32_t> y(batch * pixels * f);
        k::binary_conv2d(wb, xv, batch, k::int32_output{y.data(), f});
        for (auto _ : state) {
            k::binary_conv2d(wb, xv, batch, k::int32_output{y.data(), f});
            benchmark::DoNotOptimize(y.data());
            benchmark::ClobberMemory();
        }
    } else {
        // As nn::conv2d::forward: im2col of every sample into [patch, batch * pixels], one GEMM.
        lowbit::nn::detail::conv_geometry const g{c, hw, hw, 3, 1, 1, hw, hw};
        auto const x = random_floats(batch * c * pixels, 1), w = random_floats(f * patch, 2);
        std::size_t const ld = batch * pixels;
        std::vector<float> cols(patch * ld), y(f * ld);
        auto run = [&] {
            for (std::size_t n = 0; n < batch; ++n)
                lowbit::nn::detail::im2col(x.data() + n * c * pixels, g, cols.data() + n * pixels, ld);
            lowbit_bench::openblas_sgemm(k::transpose::no, k::transpose::no, f, ld, patch, 1.0f, w.data(), patch, cols.data(), ld, 0.0f,
                     y.data(), ld);
        };
        run();
        for (auto _ : state) {
            run();
            benchmark::DoNotOptimize(y.data());
            benchmark::ClobberMemory();
        }
    }
    set_rates(state, double(batch) * double(pixels) * double(f) * double(patch));
}

[[maybe_unused]] bool const registered = [] {
    auto const& cpu = k::cpu();
    std::string features;
    for (auto [name, on] : {std::pair{"avx2", cpu.avx2}, {"avx512bw", cpu.avx512bw}, {"avx512vpopcntdq", cpu.avx512vpopcntdq},
                            {"avx512vnni", cpu.avx512vnni}, {"avx512bitalg", cpu.avx512bitalg}})
        if (on) features += std::string(features.empty() ? "" : " ") + name;
    benchmark::AddCustomContext("cpu_features", features);
    benchmark::AddCustomContext("best_isa_popcount", k::isa_name(k::best_isa(k::int_kernel::popcount)));
    benchmark::AddCustomContext("best_isa_int8", k::isa_name(k::best_isa(k::int_kernel::int8)));
    benchmark::AddCustomContext("lowbit_with_blas", LOWBIT_WITH_BLAS ? "1 (sgemm = cblas_sgemm)" : "0");

    std::vector<std::int64_t> const one_two = {1, 2};
    benchmark::RegisterBenchmark("bound/xor_popcnt_add/avx512", bm_bound, popcount_avx512)->UseRealTime();
    benchmark::RegisterBenchmark("bound/xor_popcnt_add/avx2", bm_bound, popcount_avx2)->UseRealTime();
    benchmark::RegisterBenchmark("bound/vpdpbusd/avx512", bm_bound, vnni)->UseRealTime();
    benchmark::RegisterBenchmark("bound/vdpbf16ps/avx512", bm_bound, bf16)->UseRealTime();
    for (auto [name, which] : {std::pair{"bound_threads/xor_popcnt_add/avx512", popcount_avx512},
                               {"bound_threads/vpdpbusd/avx512", vnni}, {"bound_threads/vdpbf16ps/avx512", bf16}})
        benchmark::RegisterBenchmark(name, bm_bound_threads, which)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

    benchmark::RegisterBenchmark("micro/binary/avx512", bm_micro, isa::avx512, false)->ArgName("kw")->Arg(32)->Arg(128)->UseRealTime();
    benchmark::RegisterBenchmark("micro/binary+store/avx512", bm_micro, isa::avx512, true)->ArgName("kw")->Arg(32)->Arg(128)->UseRealTime();
    benchmark::RegisterBenchmark("micro/binary/avx2", bm_micro, isa::avx2, false)->ArgName("kw")->Arg(32)->Arg(128)->UseRealTime();

    for (isa i : {isa::avx512, isa::avx2, isa::scalar}) {
        std::vector<std::int64_t> sizes = {256, 1024};
        if (i != isa::scalar) sizes.push_back(4096);
        benchmark::RegisterBenchmark((std::string("binary_gemm/") + k::isa_name(i)).c_str(), bm_binary_gemm, i)
            ->ArgNames({"n", "threads"})
            ->ArgsProduct({sizes, one_two})
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
    }
    benchmark::RegisterBenchmark("sgemm", bm_sgemm)
        ->ArgNames({"n", "threads"})
        ->ArgsProduct({{256, 1024, 4096}, one_two})
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);

    for (auto [name, kind] : {std::pair{"mlp/binary", layer_kind::binary}, {"mlp/binary_int8", layer_kind::binary_int8},
                              {"mlp/sgemm", layer_kind::sgemm}}) {
        auto* b = benchmark::RegisterBenchmark(name, bm_mlp, kind)->ArgNames({"in", "out", "batch", "threads"});
        for (auto [in, out] : {std::pair{784, 1024}, {1024, 1024}, {1024, 10}}) {
            if (kind == layer_kind::binary_int8 && in != 784) continue;  // the first layer's kernel
            for (std::int64_t batch : {1, 256})
                for (std::int64_t th : one_two) b->Args({in, out, batch, th});
        }
        b->UseRealTime()->Unit(benchmark::kMicrosecond);
    }

    for (isa i : {isa::avx512, isa::avx2})
        for (int bits : {2, 4})
            benchmark::RegisterBenchmark((std::string("bitserial/") + std::to_string(bits) + "x" + std::to_string(bits) + "/" +
                                          k::isa_name(i)).c_str(),
                                         bm_bitserial, i, bits)
                ->ArgNames({"n", "threads"})
                ->ArgsProduct({{1024}, one_two})
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
    for (isa i : {isa::avx512, isa::avx2})
        benchmark::RegisterBenchmark((std::string("int8/") + k::isa_name(i)).c_str(), bm_int8, i)
            ->ArgNames({"n", "threads"})
            ->ArgsProduct({{1024}, one_two})
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);

    // lowbit::nn::cnn on 28x28: conv 1->16 (28x28), 16->16 (28x28), 16->32 (14x14), 32->32 (14x14).
    for (auto [name, binary] : {std::pair{"conv/binary", true}, {"conv/float", false}}) {
        auto* b = benchmark::RegisterBenchmark(name, bm_conv, binary)->ArgNames({"c", "f", "hw", "batch", "threads"});
        for (auto [c, f, hw] : {std::tuple{1, 16, 28}, {16, 16, 28}, {16, 32, 14}, {32, 32, 14}})
            for (std::int64_t batch : {1, 32})
                for (std::int64_t th : one_two) b->Args({c, f, hw, batch, th});
        b->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
    return true;
}();

} // namespace
