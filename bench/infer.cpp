// SPDX-License-Identifier: MIT
// Google Benchmark: inference of the binarized MLP 784-1024-1024-10 (8-bit DoReFa first and last layers, XNOR
// hidden layer, sign activations, bias head; issue 5) and of nn::cnn's binarized CNN (default widths 16 / 32 /
// 128 on 1x28x28, the same policies), each lowered layer by layer by deploy::compile into a
// deploy::packed_model on the integer kernels, against our float inference of the same model in the same binary:
// the nn model's evaluation forward with float weights (Q(w) of the quantized model, so both compute the same
// function), on kernels::sgemm (OpenBLAS when linked). Batch 1 (latency) and 256 (throughput), 1 and 2 threads
// (lowbit::set_num_threads, which sgemm passes on to OpenBLAS).
//   packed             the packed model, from float input: its first step maps the floats to 8-bit codes
//                      (the input map), so the rows include the quantization of the input, as a caller's would;
//   packed_all_binary  the variant with XNOR weights in the first and last layers too;
//   packed/codes, packed_all_binary/codes  the same two from 8-bit input codes (images as they are stored:
//                      packed_model::forward of uint8 rows), without the mapping of floats to codes;
//   float              the float model;
//   cnn/packed, cnn/float  the same for the CNN (cnn/float: nn::cnn's evaluation forward with Q(w), im2col +
//                      sgemm per convolution; cnn/packed reads the images as rows of c*h*w floats, NCHW);
//   kbit/..., kbit_cnn/...  the MLP and the CNN with 4-bit PACT activations and 2-bit DoReFa weights (8-bit
//                      first and last layers), against float twins with the same PACT activations.
// Counters: images_per_s (the rate of images, per second of wall time) and model_bytes (the packed model's file,
// deploy::packed_bytes, or the float checkpoint). The weights are untrained (initialised, BatchNorm statistics set
// from one batch): the work does not depend on their values. The input is random codes / 255, on the default
// input map's grid, so the first step's quantization is exact.
//
//   cmake --preset bench && cmake --build --preset bench --target bench_infer
//   build/bench/bench/bench_infer --benchmark_min_time=0.5
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/compile_options.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include <benchmark/benchmark.h>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace {

namespace ste = lowbit::ste;
namespace nn = lowbit::nn;

constexpr std::size_t hidden = 1024;

auto make_bnn()
{
    return nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = nn::init::uniform_unit, .seed = 1},
                   ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                   nn::bias_head);
}

/// The same with binary (XNOR) weights in every layer: the variant that meets the 1/25 size target.
auto make_all_binary()
{
    return nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = nn::init::uniform_unit, .seed = 1},
                   ste::xnor_weight<>{}, ste::xnor_weight<>{}, ste::xnor_weight<>{}, ste::sign_activation{},
                   nn::bias_head);
}

auto make_float()
{
    return nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .seed = 1}, nn::float_weights, nn::float_weights,
                   nn::float_weights, ste::sign_activation{}, nn::bias_head);
}

using bnn_type = decltype(make_bnn());
using float_type = decltype(make_float());

/// BatchNorm statistics from one training-mode batch, through the fake quantizers.
template <class Model, class X>
void calibrate(Model& model, X const& x)
{
    model.for_each_leaf([](auto& l) {
        if constexpr (requires { l.begin_recalibration(); }) l.begin_recalibration();
    });
    (void)model.forward(x, {.training = true});
    model.for_each_leaf([](auto& l) {
        if constexpr (requires { l.end_recalibration(); }) l.end_recalibration();
    });
}

/// The binarized CNN and its float twin, as for the MLP.
auto make_bnn_cnn()
{
    return nn::cnn({.seed = 1}, ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{},
                   ste::sign_activation{}, nn::bias_head);
}

template <class Act>
auto make_float_cnn(Act act)
{
    return nn::cnn({.seed = 1}, nn::float_weights, nn::float_weights, nn::float_weights, act, nn::bias_head);
}

/// The k-bit (PACT) models: 4-bit PACT activations, 2-bit DoReFa weights, 8-bit DoReFa first and last layers,
/// and their float twins with the same activations.
ste::pact<4> pact4() { return ste::pact<4>{{.alpha = 3.0f}}; }

auto make_kbit()
{
    return nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = nn::init::uniform_unit, .seed = 1},
                   ste::dorefa_weight<2>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, pact4(), nn::bias_head);
}

auto make_float_kbit()
{
    return nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .seed = 1}, nn::float_weights, nn::float_weights,
                   nn::float_weights, pact4(), nn::bias_head);
}

auto make_kbit_cnn()
{
    return nn::cnn({.seed = 1}, ste::dorefa_weight<2>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, pact4(),
                   nn::bias_head);
}

/// How the benchmarks lower a model: the default input map (codes / 255, exact for the input below) and, for a
/// CNN, the image side (0 for an MLP, which ignores it).
lowbit::deploy::compile_options lowering_of(std::size_t side)
{
    return {.input = {.scale = 1.0f / 255.0f, .offset = 0.0f}, .height = side, .width = side};
}

/// A quantized model lowered by deploy::compile, and its float twin: the same function with Q(w) as float
/// weights and the same BatchNorm state (and PACT alphas), on random 8-bit input of @p shape as floats.
template <class Quantized, class Float, std::size_t Rank>
struct twins {
    Quantized q;
    Float flt;
    lowbit::deploy::packed_model packed;
    xt::xtensor<float, Rank> x;  ///< the input as the float model reads it (rows, or NCHW images)
    xt::xtensor<float, 2> rows;  ///< x as rows of features (NCHW order), as packed_model reads it
    std::size_t packed_bytes = 0, float_bytes = 0;

    twins(Quantized quantized, Float twin, std::array<std::size_t, Rank> const& shape)
        : q(std::move(quantized)), flt(std::move(twin))
    {
        std::mt19937_64 rng(3);
        x = xt::xtensor<float, Rank>::from_shape(shape);
        for (auto& v : x) v = static_cast<float>(rng() % 3 == 0 ? 0 : rng() & 0xFF) / 255.0f;
        rows = xt::xtensor<float, 2>::from_shape({shape[0], x.size() / shape[0]});
        std::copy(x.begin(), x.end(), rows.begin());
        calibrate(q, x);
        packed = lowbit::deploy::compile(q, lowering_of(Rank == 4 ? shape[2] : 0));
        packed_bytes = lowbit::deploy::packed_bytes(packed);
        lowbit::io::archive a = lowbit::train::to_archive(q);
        lowbit::train::from_archive(flt, a);
        std::vector<std::vector<float>> values;  // Q(w) of every weight, in the models' common order
        q.for_each_weight([&](auto& w) {
            auto const v = w.forward_values({.training = false});
            values.emplace_back(v.begin(), v.end());
        });
        std::size_t i = 0;
        flt.for_each_weight([&](auto& w) { w.assign(values.at(i++)); });
        float_bytes = lowbit::io::archive_bytes(lowbit::train::to_archive(flt)).size();
    }
};

template <class Q, class F, std::size_t Rank>
twins(Q, F, std::array<std::size_t, Rank> const&) -> twins<Q, F, Rank>;

/// The binarized MLP and its twin, and the all-binary variant's packed model.
struct setup : twins<bnn_type, float_type, 2> {
    lowbit::deploy::packed_model packed_binary;
    std::size_t packed_binary_bytes = 0;

    setup() : twins(make_bnn(), make_float(), {256, 784})
    {
        auto binary = make_all_binary();
        calibrate(binary, x);
        packed_binary = lowbit::deploy::compile(binary, lowering_of(0));
        packed_binary_bytes = lowbit::deploy::packed_bytes(packed_binary);
    }
};

setup& models()
{
    static setup s;
    return s;
}

auto& cnn_models()
{
    static twins s(make_bnn_cnn(), make_float_cnn(ste::sign_activation{}), std::array<std::size_t, 4>{256, 1, 28, 28});
    return s;
}

auto& kbit_models()
{
    static twins s(make_kbit(), make_float_kbit(), std::array<std::size_t, 2>{256, 784});
    return s;
}

auto& kbit_cnn_models()
{
    static twins s(make_kbit_cnn(), make_float_cnn(pact4()), std::array<std::size_t, 4>{256, 1, 28, 28});
    return s;
}

/// Sets the thread count for one benchmark and restores it afterwards.
struct threads {
    unsigned before = lowbit::num_threads();
    explicit threads(std::int64_t n) { lowbit::set_num_threads(static_cast<unsigned>(n)); }
    ~threads() { lowbit::set_num_threads(before); }
};

void counters(benchmark::State& state, std::size_t batch, std::size_t bytes)
{
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
    state.counters["images_per_s"] =
        benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["model_bytes"] = static_cast<double>(bytes);
}

/// @p m on the first rows of @p rows (floats, which its first step maps to codes).
void packed_run(benchmark::State& state, lowbit::deploy::packed_model const& m, xt::xtensor<float, 2> const& rows,
                std::size_t bytes)
{
    threads const t(state.range(0));
    auto const batch = static_cast<std::size_t>(state.range(1));
    xt::xtensor<float, 2> const in = xt::view(rows, xt::range(0, batch), xt::all());
    for (auto _ : state) {
        xt::xtensor<float, 2> l = m.forward(in);
        benchmark::DoNotOptimize(l.data());
    }
    counters(state, batch, bytes);
}

/// @p m on the first rows of 8-bit input codes @p codes (images as they are stored), which it reads without mapping
/// floats: the rows `.../codes`, for the MLPs (a CNN's first step reorders float images, so it reads floats).
void packed_codes_run(benchmark::State& state, lowbit::deploy::packed_model const& m,
                      xt::xtensor<std::uint8_t, 2> const& codes, std::size_t bytes)
{
    threads const t(state.range(0));
    auto const batch = static_cast<std::size_t>(state.range(1));
    xt::xtensor<std::uint8_t, 2> const in = xt::view(codes, xt::range(0, batch), xt::all());
    for (auto _ : state) {
        xt::xtensor<float, 2> l = m.forward(in);
        benchmark::DoNotOptimize(l.data());
    }
    counters(state, batch, bytes);
}

/// The codes q of @p rows under the default input map (q / 255, exact for the input the benchmarks make).
xt::xtensor<std::uint8_t, 2> codes_of(xt::xtensor<float, 2> const& rows)
{
    xt::xtensor<std::uint8_t, 2> q = xt::xtensor<std::uint8_t, 2>::from_shape(rows.shape());
    std::transform(rows.begin(), rows.end(), q.begin(),
                   [](float v) { return static_cast<std::uint8_t>(std::lround(v * 255.0f)); });
    return q;
}

template <class Twins>
void packed_twin(benchmark::State& state, Twins& s)
{
    packed_run(state, s.packed, s.rows, s.packed_bytes);
}

template <class Twins>
void float_twin(benchmark::State& state, Twins& s)
{
    threads const t(state.range(0));
    auto const batch = static_cast<std::size_t>(state.range(1));
    auto const in = xt::eval(xt::view(s.x, xt::range(0, batch)));
    for (auto _ : state) {
        xt::xtensor<float, 2> l = s.flt.forward(in, {.training = false});
        benchmark::DoNotOptimize(l.data());
    }
    counters(state, batch, s.float_bytes);
}

void BM_packed(benchmark::State& state) { packed_twin(state, models()); }
void BM_packed_all_binary(benchmark::State& state)
{
    setup& s = models();
    packed_run(state, s.packed_binary, s.rows, s.packed_binary_bytes);
}
void BM_packed_codes(benchmark::State& state)
{
    static xt::xtensor<std::uint8_t, 2> const codes = codes_of(models().rows);
    packed_codes_run(state, models().packed, codes, models().packed_bytes);
}
void BM_packed_all_binary_codes(benchmark::State& state)
{
    static xt::xtensor<std::uint8_t, 2> const codes = codes_of(models().rows);
    packed_codes_run(state, models().packed_binary, codes, models().packed_binary_bytes);
}
void BM_float(benchmark::State& state) { float_twin(state, models()); }
void BM_cnn_packed(benchmark::State& state) { packed_twin(state, cnn_models()); }
void BM_cnn_float(benchmark::State& state) { float_twin(state, cnn_models()); }
void BM_kbit_packed(benchmark::State& state) { packed_twin(state, kbit_models()); }
void BM_kbit_float(benchmark::State& state) { float_twin(state, kbit_models()); }
void BM_kbit_cnn_packed(benchmark::State& state) { packed_twin(state, kbit_cnn_models()); }
void BM_kbit_cnn_float(benchmark::State& state) { float_twin(state, kbit_cnn_models()); }

void shapes(benchmark::internal::Benchmark* b)
{
    b->ArgNames({"threads", "batch"});
    for (std::int64_t th : {1, 2})
        for (std::int64_t batch : {1, 256}) b->Args({th, batch});
    b->UseRealTime();
}

BENCHMARK(BM_packed)->Name("packed")->Apply(shapes);
BENCHMARK(BM_packed_all_binary)->Name("packed_all_binary")->Apply(shapes);
BENCHMARK(BM_packed_codes)->Name("packed/codes")->Apply(shapes);
BENCHMARK(BM_packed_all_binary_codes)->Name("packed_all_binary/codes")->Apply(shapes);
BENCHMARK(BM_float)->Name("float")->Apply(shapes);
BENCHMARK(BM_cnn_packed)->Name("cnn/packed")->Apply(shapes);
BENCHMARK(BM_cnn_float)->Name("cnn/float")->Apply(shapes);
BENCHMARK(BM_kbit_packed)->Name("kbit/packed")->Apply(shapes);
BENCHMARK(BM_kbit_float)->Name("kbit/float")->Apply(shapes);
BENCHMARK(BM_kbit_cnn_packed)->Name("kbit_cnn/packed")->Apply(shapes);
BENCHMARK(BM_kbit_cnn_float)->Name("kbit_cnn/float")->Apply(shapes);

} // namespace
