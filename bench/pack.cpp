// SPDX-License-Identifier: MIT
// Google Benchmark suite for the quantize+pack and unpack+dequantize kernels (kernels/pack.hpp).
//
// Every benchmark reports bytes_per_second as bytes of FLOAT data per second (n * 4 bytes per iteration:
// the input of quantize+pack, the output of unpack+dequantize), so all of them compare directly with the
// `memcpy` baseline of the same n * 4 bytes at the same size and thread count. Arguments: n (floats) and
// nthreads (lowbit::set_num_threads). Kernels only split across threads for n >= 2 * 65536, so at the two
// small sizes nthreads:2 runs on one thread (the memcpy baseline uses the same parallel_for and grain).
// The scalar references (kernels/reference/pack.hpp) run in the same binary as baselines.
//
//   cmake --workflow --preset bench
//   build/bench/bench/bench_pack --benchmark_min_time=0.2 --benchmark_out=build/bench/pack.json
//       --benchmark_out_format=json        (one command line)
//
// Debian's libbenchmark 1.7.1 prints "***WARNING*** Library was built as DEBUG": that is the library, not
// lowbit, which the bench preset builds Release with -march=native.

#include <lowbit/detail/xsimd_compat.hpp>
#include <lowbit/kernels/pack.hpp>
#include <lowbit/kernels/quantize_params.hpp>
#include <lowbit/kernels/reference/pack.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/rounding.hpp>

#include <benchmark/benchmark.h>
#include <xsimd/xsimd.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace {

namespace k = lowbit::kernels;

// ---- What is swept ---------------------------------------------------------------------------------------

template <class... Ts>
struct type_list {};

template <int... Bs>
using widths = type_list<std::integral_constant<int, Bs>...>;

using roundings = type_list<lowbit::nearest_even_t, lowbit::stochastic_t>;
using all_widths = widths<1, 2, 4, 8>;
using reference_widths = widths<1, 4>;

// 16 KiB (L1), 256 KiB (L2), 4 MiB (L2/LLC), 64 MiB (DRAM) of float data.
std::vector<std::int64_t> const sizes = {std::int64_t{1} << 12, std::int64_t{1} << 16, std::int64_t{1} << 20,
                                         std::int64_t{1} << 24};
std::vector<std::int64_t> const reference_sizes = {std::int64_t{1} << 24};
std::vector<std::int64_t> const thread_counts = {1, 2};

template <class R>
constexpr char const* rounding_name() noexcept
{
    if constexpr (std::is_same_v<R, lowbit::nearest_even_t>)
        return "nearest_even";
    else
        return "stochastic";
}

// ---- Data ------------------------------------------------------------------------------------------------

constexpr float clip = 1.0f;  // clipping bound a; inputs run a bit past it so both clamps are exercised

// Inputs are generated once per size and shared (the benchmark function runs several times per benchmark
// while the iteration count is calibrated; regenerating 64 MiB each time would dominate the run time).
std::vector<float> const& floats(std::size_t n)
{
    static std::map<std::size_t, std::vector<float>> cache;
    auto [it, fresh] = cache.try_emplace(n, n);
    if (fresh) {
        std::mt19937 gen(12345);
        std::uniform_real_distribution<float> d(-1.25f * clip, 1.25f * clip);
        for (auto& v : it->second) v = d(gen);
    }
    return it->second;
}

std::vector<std::uint8_t> const& bytes(std::size_t n)
{
    static std::map<std::size_t, std::vector<std::uint8_t>> cache;
    auto [it, fresh] = cache.try_emplace(n, n);
    if (fresh) {
        std::mt19937 gen(678);
        for (auto& v : it->second) v = static_cast<std::uint8_t>(gen());
    }
    return it->second;
}

template <int Bits>
k::quantize_params quantize_params_for()
{
    constexpr auto levels = lowbit::grid::symmetric_even::levels<Bits>();
    return k::make_quantize_params(levels, Bits, levels.step_for_range(clip), /*wrap=*/false,
                                   lowbit::random::counter_key{0x5eed, 1, 7});
}

template <int Bits>
k::dequantize_params dequantize_params_for()
{
    constexpr auto levels = lowbit::grid::symmetric_even::levels<Bits>();
    return k::make_dequantize_params(levels, levels.step_for_range(clip));
}

// ---- Implementations: the optimised kernels and the scalar references, one body per operation ----------

struct optimised {
    static constexpr char const* prefix = "";

    template <class R>
    static std::size_t quantize_pack(float const* x, std::size_t n, k::quantize_params const& p, int bits,
                                     std::uint8_t* /*codes*/, std::uint8_t* out)
    {
        return k::quantize_pack<R>(x, n, n, &p, bits, out);
    }

    static void unpack_dequantize(std::uint8_t const* in, std::size_t n, k::dequantize_params const& p, int bits,
                                  std::uint8_t* /*codes*/, float* out)
    {
        k::unpack_dequantize(in, n, n, &p, bits, out);
    }
};

/// Two passes over the whole array, one element (one bit when packing) at a time; single-threaded.
struct scalar_reference {
    static constexpr char const* prefix = "ref_";

    template <class R>
    static std::size_t quantize_pack(float const* x, std::size_t n, k::quantize_params const& p, int bits,
                                     std::uint8_t* codes, std::uint8_t* out)
    {
        std::size_t const nans = k::reference::quantize_codes<R>(x, codes, n, 0, p);
        k::reference::pack_codes(codes, n, bits, out);
        return nans;
    }

    static void unpack_dequantize(std::uint8_t const* in, std::size_t n, k::dequantize_params const& p, int bits,
                                  std::uint8_t* codes, float* out)
    {
        k::reference::unpack_codes(in, n, bits, codes);
        k::reference::dequantize_codes(codes, n, p, out);
    }
};

void set_float_throughput(benchmark::State& state, std::size_t n)
{
    auto const iters = static_cast<std::int64_t>(state.iterations());
    state.SetBytesProcessed(iters * static_cast<std::int64_t>(n * sizeof(float)));
    state.SetItemsProcessed(iters * static_cast<std::int64_t>(n));
}

// ---- Benchmark bodies ------------------------------------------------------------------------------------

template <class Impl, class R, int Bits>
void bm_quantize_pack(benchmark::State& state)
{
    auto const n = static_cast<std::size_t>(state.range(0));
    lowbit::set_num_threads(static_cast<unsigned>(state.range(1)));
    std::vector<float> const& x = floats(n);
    std::vector<std::uint8_t> codes(std::is_same_v<Impl, scalar_reference> ? n : 0);
    std::vector<std::uint8_t> out(k::packed_bytes(n, Bits));  // zero-filled: pages touched before timing
    k::quantize_params const p = quantize_params_for<Bits>();
    for (auto _ : state) {
        std::size_t nans = Impl::template quantize_pack<R>(x.data(), n, p, Bits, codes.data(), out.data());
        benchmark::DoNotOptimize(nans);
        benchmark::ClobberMemory();
    }
    set_float_throughput(state, n);
}

template <class Impl, int Bits>
void bm_unpack_dequantize(benchmark::State& state)
{
    auto const n = static_cast<std::size_t>(state.range(0));
    lowbit::set_num_threads(static_cast<unsigned>(state.range(1)));
    std::vector<std::uint8_t> const& in = bytes(k::packed_bytes(n, Bits));
    std::vector<std::uint8_t> codes(std::is_same_v<Impl, scalar_reference> ? n : 0);
    std::vector<float> out(n);
    k::dequantize_params const p = dequantize_params_for<Bits>();
    for (auto _ : state) {
        Impl::unpack_dequantize(in.data(), n, p, Bits, codes.data(), out.data());
        float* o = out.data();
        benchmark::DoNotOptimize(o);
        benchmark::ClobberMemory();
    }
    set_float_throughput(state, n);
}

/// The bandwidth yardstick: n floats src -> dst, split across threads exactly as the kernels split
/// (parallel_for with the kernels' grain; with nthreads:1 or n < 2 * grain it is one plain std::memcpy).
void bm_memcpy(benchmark::State& state)
{
    auto const n = static_cast<std::size_t>(state.range(0));
    lowbit::set_num_threads(static_cast<unsigned>(state.range(1)));
    std::vector<float> const& src = floats(n);
    std::vector<float> dst(n);
    for (auto _ : state) {
        lowbit::parallel_for(n, k::detail::parallel_grain, [&](std::size_t b, std::size_t e) {
            std::memcpy(dst.data() + b, src.data() + b, (e - b) * sizeof(float));
        });
        float* d = dst.data();
        benchmark::DoNotOptimize(d);
        benchmark::ClobberMemory();
    }
    set_float_throughput(state, n);
}

// ---- Registration over the type lists --------------------------------------------------------------------

template <class... Ts, class F>
void for_each_type(type_list<Ts...>, F&& f)
{
    (f(std::type_identity<Ts>{}), ...);
}

void sweep(benchmark::internal::Benchmark* b, std::vector<std::int64_t> const& ns,
           std::vector<std::int64_t> const& threads)
{
    b->ArgsProduct({ns, threads})->ArgNames({"n", "nthreads"})->UseRealTime();
}

template <class Impl, class Widths, class Roundings>
void register_quantize_pack(std::vector<std::int64_t> const& ns, std::vector<std::int64_t> const& threads)
{
    for_each_type(Roundings{}, [&](auto r) {
        using R = typename decltype(r)::type;
        for_each_type(Widths{}, [&](auto w) {
            constexpr int bits = decltype(w)::type::value;
            std::string const name = std::string(Impl::prefix) + "quantize_pack<" + rounding_name<R>() + "," +
                                     std::to_string(bits) + ">";
            sweep(benchmark::RegisterBenchmark(name.c_str(), bm_quantize_pack<Impl, R, bits>), ns, threads);
        });
    });
}

template <class Impl, class Widths>
void register_unpack_dequantize(std::vector<std::int64_t> const& ns, std::vector<std::int64_t> const& threads)
{
    for_each_type(Widths{}, [&](auto w) {
        constexpr int bits = decltype(w)::type::value;
        std::string const name = std::string(Impl::prefix) + "unpack_dequantize<" + std::to_string(bits) + ">";
        sweep(benchmark::RegisterBenchmark(name.c_str(), bm_unpack_dequantize<Impl, bits>), ns, threads);
    });
}

[[maybe_unused]] bool const registered = [] {
    benchmark::AddCustomContext("xsimd_arch", lowbit::detail::arch_name<xsimd::default_arch>());
    benchmark::AddCustomContext("lowbit_pext", LOWBIT_HAS_PEXT ? "1 (BMI2 _pext_u64 packing)"
                                                               : "0 (shift-and-or packing)");
    benchmark::AddCustomContext("lowbit_parallel_grain", std::to_string(k::detail::parallel_grain));
    benchmark::AddCustomContext("bytes_per_second", "float bytes: n*4 (quantize input, dequantize output)");

    sweep(benchmark::RegisterBenchmark("memcpy", bm_memcpy), sizes, thread_counts);
    register_quantize_pack<optimised, all_widths, roundings>(sizes, thread_counts);
    register_unpack_dequantize<optimised, all_widths>(sizes, thread_counts);
    // The references are single-threaded; one large size shows the speed-up.
    register_quantize_pack<scalar_reference, reference_widths, roundings>(reference_sizes, {1});
    register_unpack_dequantize<scalar_reference, reference_widths>(reference_sizes, {1});
    return true;
}();

} // namespace
