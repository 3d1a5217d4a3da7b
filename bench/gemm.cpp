// SPDX-License-Identifier: MIT
// Google Benchmark suite for single-precision GEMM (kernels/gemm.hpp): OpenBLAS's cblas_sgemm with its own
// threading (bench/support/openblas_native.hpp), lowbit's xsimd fallback, and, at small sizes only, the scalar
// reference. Square C = A * B (no transposes, alpha = 1, beta = 0), sizes 64 .. 1024, on 1 and 2 threads
// (lowbit::set_num_threads, which openblas_sgemm passes on to OpenBLAS). The FLOPS counter counts 2 * m * n * k per
// call, so it reads directly as GFLOP/s ("G/s"). Arguments: size, nthreads.
//
//   cmake --workflow --preset bench
//   build/bench/bench/bench_gemm --benchmark_min_time=0.1
//
// Debian's libbenchmark 1.7.1 prints "***WARNING*** Library was built as DEBUG": that is the library, not
// lowbit, which the bench preset builds Release with -march=native.

#include <lowbit/detail/xsimd_compat.hpp>
#include <lowbit/kernels/gemm.hpp>
#include <lowbit/kernels/reference/gemm.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include "support/openblas_native.hpp"

#include <benchmark/benchmark.h>
#include <xsimd/xsimd.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

namespace k = lowbit::kernels;

std::vector<std::int64_t> const sizes = {64, 128, 256, 512, 1024};
std::vector<std::int64_t> const reference_sizes = {64, 128};
std::vector<std::int64_t> const thread_counts = {1, 2};

struct use_blas {
    static void gemm(std::size_t n, float const* a, float const* b, float* c)
    {
        lowbit_bench::openblas_sgemm(k::transpose::no, k::transpose::no, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    }
};
struct use_fallback {
    static void gemm(std::size_t n, float const* a, float const* b, float* c)
    {
        k::sgemm_fallback(k::transpose::no, k::transpose::no, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    }
};
struct use_reference {
    static void gemm(std::size_t n, float const* a, float const* b, float* c)
    {
        k::reference::sgemm(k::transpose::no, k::transpose::no, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    }
};

template <class Impl>
void bm_sgemm(benchmark::State& state)
{
    auto const n = static_cast<std::size_t>(state.range(0));
    unsigned const before = lowbit::num_threads();
    lowbit::set_num_threads(static_cast<unsigned>(state.range(1)));
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> a(n * n), b(n * n), c(n * n);
    for (auto& x : a) x = u(rng);
    for (auto& x : b) x = u(rng);
    Impl::gemm(n, a.data(), b.data(), c.data());  // warm-up: thread pools, packing buffers
    for (auto _ : state) {
        Impl::gemm(n, a.data(), b.data(), c.data());
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    double const flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
    state.counters["FLOPS"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::OneK::kIs1000);
    lowbit::set_num_threads(before);
}

void sweep(benchmark::internal::Benchmark* b, std::vector<std::int64_t> const& ns,
           std::vector<std::int64_t> const& threads)
{
    b->ArgNames({"n", "nthreads"})->ArgsProduct({ns, threads})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

[[maybe_unused]] bool const registered = [] {
    using tile = k::detail::gemm_tile<xsimd::default_arch>;
    benchmark::AddCustomContext("xsimd_arch", lowbit::detail::arch_name<xsimd::default_arch>());
    benchmark::AddCustomContext("lowbit_gemm_tile",
                                std::to_string(tile::mr) + "x" + std::to_string(tile::nr) + " floats");
    benchmark::AddCustomContext("lowbit_with_blas", LOWBIT_WITH_BLAS ? "1 (sgemm = cblas_sgemm)" : "0");
#if LOWBIT_WITH_BLAS
    sweep(benchmark::RegisterBenchmark("sgemm_openblas", bm_sgemm<use_blas>), sizes, thread_counts);
#endif
    sweep(benchmark::RegisterBenchmark("sgemm_fallback", bm_sgemm<use_fallback>), sizes, thread_counts);
    // The reference is a plain triple loop: small sizes, one thread.
    sweep(benchmark::RegisterBenchmark("sgemm_reference", bm_sgemm<use_reference>), reference_sizes, {1});
    return true;
}();

} // namespace
