// SPDX-License-Identifier: MIT
// Training-step throughput of the quantization-aware methods of issue 4 against BinaryConnect and float, in
// one binary: the Fashion-MNIST MLP (784-1024-1024-10, BatchNorm, classifier with bias), batch 100, SGD,
// 1 and 2 threads. Hidden weights and activations at 4 bits (2 for SQWA, its paper's setting), first and
// last layers at 8 bits, as lowbit-train builds them:
//   fp       float weights and activations
//   bc       BinaryConnect, weights on Li et al.'s 16-level grid, float activations (the baseline)
//   dorefa   DoReFa weights + DoReFa activations
//   pact     DoReFa weights + PACT activations
//   lsq      LSQ weights + LSQ activations (learned steps)
//   sat      DoReFa weights + CG-PACT activations + the rescaled last layer (train::sat)
//   sqwa     a retraining step of SQWA (ternary L2-optimal weights + 2-bit PACT activations); the captures
//            and averaging happen once per cycle (hundreds of steps) and are not in a step's cost
// Items/s are images/s; `docs/benchmarks.md` gives each method's overhead over bc.
#include "support/fashion_mnist_batch.hpp"

#include <lowbit/lowbit.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>

namespace {

namespace ste = lowbit::ste;
using lowbit::nn::bias_head;
using lowbit::nn::float_activations;

template <class Method, class Model>
void run_steps(benchmark::State& state, Model& model)
{
    lowbit::set_num_threads(static_cast<unsigned>(state.range(0)));
    auto const& d = lowbit_bench::fashion_mnist_batch();
    lowbit::train::trainer t{model, Method{}, lowbit::optim::sgd({.lr = 0.01f, .momentum = 0.9f})};
    for (auto _ : state) {
        auto r = t.step(d.x, d.y, 1, 0.01f);
        benchmark::DoNotOptimize(r.loss);
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(d.x.shape(0)));
}

lowbit::nn::mlp_options const opts{.init = lowbit::nn::init::uniform_unit};

void BM_fp(benchmark::State& state)
{
    auto model = lowbit::nn::mlp(opts, lowbit::nn::float_weights, lowbit::nn::float_weights, lowbit::nn::float_weights,
                                 float_activations, bias_head);
    run_steps<lowbit::train::full_precision>(state, model);
}

void BM_bc(benchmark::State& state)
{
    using w4 = lowbit::quantizer<4, lowbit::nearest_even_t, lowbit::clip::fixed_range, lowbit::grid::symmetric_even>;
    using w8 = lowbit::set_bit_width_t<w4, 8>;
    auto model = lowbit::nn::mlp(opts, w4{.clipping = {.bound = 1.0f}}, w8{.clipping = {.bound = 1.0f}},
                                 w8{.clipping = {.bound = 1.0f}}, float_activations, bias_head);
    run_steps<lowbit::train::binary_connect>(state, model);
}

void BM_dorefa(benchmark::State& state)
{
    auto model = lowbit::nn::mlp(opts, ste::dorefa_weight<4>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{},
                                 ste::dorefa_activation<4>{}, bias_head);
    run_steps<lowbit::train::binary_connect>(state, model);
}

void BM_pact(benchmark::State& state)
{
    auto model = lowbit::nn::mlp(opts, ste::dorefa_weight<4>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{},
                                 ste::pact<4>({.alpha = 4.0f}), bias_head);
    run_steps<lowbit::train::binary_connect>(state, model);
}

void BM_lsq(benchmark::State& state)
{
    auto model = lowbit::nn::mlp(opts, ste::lsq<4>{}, ste::lsq<8>{}, ste::lsq<8>{},
                                 ste::lsq<4, lowbit::grid::unsigned_int>{}, bias_head);
    run_steps<lowbit::train::binary_connect>(state, model);
}

void BM_sat(benchmark::State& state)
{
    auto model = lowbit::nn::mlp(opts, ste::dorefa_weight<4>{}, ste::dorefa_weight<8>{},
                                 ste::sat_rescale<ste::dorefa_weight<8>>{},
                                 ste::calibrated_t<ste::pact<4>>({.alpha = 4.0f}), bias_head);
    run_steps<lowbit::train::sat<>>(state, model);
}

void BM_sqwa(benchmark::State& state)
{
    auto model = lowbit::nn::mlp(opts, ste::uniform_weight<2>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{},
                                 ste::pact<2>({.alpha = 4.0f}), bias_head);
    run_steps<lowbit::train::sqwa<>>(state, model);
}

BENCHMARK(BM_fp)->Name("qat_step/fp")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_bc)->Name("qat_step/bc")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_dorefa)->Name("qat_step/dorefa")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_pact)->Name("qat_step/pact")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_lsq)->Name("qat_step/lsq")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_sat)->Name("qat_step/sat")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_sqwa)->Name("qat_step/sqwa")->Arg(1)->Arg(2)->UseRealTime();

} // namespace
