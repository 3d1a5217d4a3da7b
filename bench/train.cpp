// SPDX-License-Identifier: MIT
// Training throughput of the Fashion-MNIST MLP (784-1024-1024-10 with BatchNorm, binary weights, Adam,
// batch 100, 2 threads): images per second of full training steps (forward, loss, backward, update) for
// full precision, BinaryConnect and stochastic rounding. The PyTorch peer runs the same model in the same
// session from scripts/bench; `bench_train --benchmark_filter=...` runs one method.
#include "support/fashion_mnist_batch.hpp"

#include <lowbit/lowbit.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>

namespace {

using w1 = lowbit::quantizer<1, lowbit::nearest_even_t, lowbit::clip::fixed_range>;
using w1s = lowbit::quantizer<1, lowbit::stochastic_t, lowbit::clip::fixed_range>;

template <class Method, class Policy>
void BM_train_step(benchmark::State& state)
{
    lowbit::set_num_threads(static_cast<unsigned>(state.range(0)));
    auto const& d = lowbit_bench::fashion_mnist_batch();
    auto model = lowbit::nn::mlp({.init = lowbit::nn::init::uniform_unit}, Policy{.clipping = {.bound = 1.0f}},
                                 Policy{.clipping = {.bound = 1.0f}}, Policy{.clipping = {.bound = 1.0f}});
    lowbit::train::trainer t{model, Method{}, lowbit::optim::adam({.lr = 0.01f})};
    for (auto _ : state) {
        auto r = t.step(d.x, d.y, 1, 0.01f);
        benchmark::DoNotOptimize(r.loss);
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(d.x.shape(0)));
    state.counters["weight_bytes"] = static_cast<double>(t.weight_bytes());
}

BENCHMARK_TEMPLATE(BM_train_step, lowbit::train::full_precision, w1)->Name("train_step/fp")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_TEMPLATE(BM_train_step, lowbit::train::binary_connect, w1)->Name("train_step/bc")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_TEMPLATE(BM_train_step, lowbit::train::stochastic_rounding, w1s)->Name("train_step/sr")->Arg(1)->Arg(2)->UseRealTime();

} // namespace
