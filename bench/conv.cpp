// SPDX-License-Identifier: MIT
// The convolutions of nn::cnn (lowbit-train --model cnn) in training, and the machine's float peak they are
// measured against:
// - conv_layer/<layer>/<path>/<threads>: forward + backward of one nn::conv2d layer of nn::cnn on a batch of 100
//   (random data; forward, input gradient and weight gradient: 3 x the forward MACs), on lowbit's direct kernels
//   (`kernels`) and on the im2col + sgemm reference (`reference`), at 1 and 2 threads: images/s and GMAC/s.
// - fma_peak/<threads>: independent float multiply-add chains in registers on every thread (the instruction
//   bound of float training on this CPU): GMAC/s. docs/benchmarks.md divides by it for the fraction of the
//   physical limit that training reaches.
#include <lowbit/detail/xsimd_compat.hpp>
#include <lowbit/kernels/arch/fma.hpp>
#include <lowbit/nn/conv2d.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <benchmark/benchmark.h>
#include <xsimd/xsimd.hpp>

#include <cstdint>
#include <random>

namespace {

struct layer_shape {
    std::size_t in, out, side;
};
// nn::cnn's four 3x3 convolutions (padding 1) on 28x28 Fashion-MNIST images: 16-16-pool-32-32.
constexpr layer_shape layers[] = {{1, 16, 28}, {16, 16, 28}, {16, 32, 14}, {32, 32, 14}};
constexpr std::size_t batch = 100;

void BM_conv_layer(benchmark::State& state)
{
    layer_shape const l = layers[state.range(0)];
    auto const path = state.range(1) == 0 ? lowbit::nn::execution::kernels : lowbit::nn::execution::reference;
    lowbit::set_num_threads(static_cast<unsigned>(state.range(2)));
    lowbit::nn::conv2d<> conv({.in = l.in, .out = l.out, .kernel = 3, .padding = 1, .bias = false, .seed = 1,
                               .execution = path});
    std::mt19937 gen(3);
    std::normal_distribution<float> d(0.0f, 1.0f);
    xt::xtensor<float, 4> x = xt::xtensor<float, 4>::from_shape({batch, l.in, l.side, l.side});
    for (auto& v : x) v = d(gen);
    xt::xtensor<float, 4> dy = xt::xtensor<float, 4>::from_shape({batch, l.out, l.side, l.side});
    for (auto& v : dy) v = d(gen);
    for (auto _ : state) {
        auto y = conv.forward(x, {.training = true});
        auto dx = conv.backward(dy);
        benchmark::DoNotOptimize(y.data());
        benchmark::DoNotOptimize(dx.data());
    }
    double const macs = 3.0 * static_cast<double>(l.in * l.out * 9 * l.side * l.side * batch);
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
    state.counters["GMAC/s"] = benchmark::Counter(macs * 1e-9 * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
    state.SetLabel(path == lowbit::nn::execution::kernels ? "kernels" : "reference");
}

void conv_args(benchmark::internal::Benchmark* b)
{
    for (std::int64_t layer = 0; layer < 4; ++layer)
        for (std::int64_t path : {0, 1})
            for (std::int64_t threads : {1, 2}) b->Args({layer, path, threads});
    b->ArgNames({"layer", "reference", "threads"});
}

/// 12 independent chains of fused multiply-adds per thread: each FMA waits only on its own chain's previous
/// one, so the FMA ports, not the 4-cycle latency, bound the rate (12 chains >= 2 ports x 4 cycles).
void BM_fma_peak(benchmark::State& state)
{
    using batch_t = xsimd::batch<float>;
    unsigned const threads = static_cast<unsigned>(state.range(0));
    lowbit::set_num_threads(threads);
    constexpr std::size_t chains = 12, iterations = std::size_t{1} << 20;
    for (auto _ : state) {
        lowbit::parallel_for(threads, 1, [&](std::size_t b, std::size_t e) {
            for (std::size_t t = b; t < e; ++t) {
                batch_t acc[chains];
                for (std::size_t c = 0; c < chains; ++c) acc[c] = batch_t(static_cast<float>(c + t));
                batch_t const m(0.999999f), a(1e-7f);
                for (std::size_t i = 0; i < iterations; ++i)
                    for (std::size_t c = 0; c < chains; ++c) acc[c] = lowbit::kernels::detail::fused_fma(acc[c], m, a);
                float sum = 0.0f;
                for (std::size_t c = 0; c < chains; ++c) sum += lowbit::detail::reduce_add(acc[c]);
                benchmark::DoNotOptimize(sum);
            }
        });
    }
    double const macs = static_cast<double>(threads * chains * iterations * batch_t::size);
    state.counters["GMAC/s"] = benchmark::Counter(macs * 1e-9 * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

} // namespace

BENCHMARK(BM_conv_layer)->Name("conv_layer")->Apply(conv_args)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_fma_peak)->Name("fma_peak")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
