// SPDX-License-Identifier: MIT
// Google Benchmark: inference of the binarized MLP 784-1024-1024-10 (8-bit DoReFa first and last layers, XNOR
// hidden layer, sign activations, bias head; issue 5) and of nn::cnn's binarized CNN (default widths 16 / 32 /
// 128 on 1x28x28, the same policies) packed on the integer kernels (lowbit::deploy), against
// our float inference of the same model in the same binary: the nn model's evaluation forward with float
// weights (Q(w) of the quantized model, so both compute the same function), on kernels::sgemm (OpenBLAS when
// linked). Batch 1 (latency) and 256 (throughput), 1 and 2 threads (lowbit::set_num_threads, which sgemm
// passes on to OpenBLAS).
//   packed/codes  the packed model on 8-bit input codes (images as they come);
//   packed/float  the same from float input, including the quantization of the input to codes;
//   packed_all_binary/codes  the variant with XNOR weights in the first and last layers too;
//   float         the float model;
//   cnn/packed/codes, cnn/float  the same for the CNN (cnn/float: nn::cnn's evaluation forward with Q(w), im2col
//                 + sgemm per convolution).
// Counters: images_per_s (the rate of images, per second of wall time) and model_bytes (the packed file, or
// the float checkpoint). The weights are untrained (initialised, BatchNorm statistics set from one batch):
// the work does not depend on their values.
//
//   cmake --preset bench && cmake --build --preset bench --target bench_infer
//   build/bench/bench/bench_infer --benchmark_min_time=0.5
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_cnn_file.hpp>
#include <lowbit/deploy/packed_file.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include <benchmark/benchmark.h>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
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
    model.for_each_weight([](auto& w) { w.store_as(nn::weight_storage::shadow, 0); });
    model.for_each_leaf([](auto& l) {
        if constexpr (requires { l.begin_recalibration(); }) l.begin_recalibration();
    });
    (void)model.forward(x, {.training = true});
    model.for_each_leaf([](auto& l) {
        if constexpr (requires { l.end_recalibration(); }) l.end_recalibration();
    });
}

struct setup {
    bnn_type bnn = make_bnn();
    float_type flt = make_float();
    lowbit::deploy::packed_mlp packed, packed_binary;
    std::size_t packed_binary_bytes = 0;
    xt::xtensor<std::uint8_t, 2> codes;
    xt::xtensor<float, 2> x;
    std::size_t packed_bytes = 0, float_bytes = 0;

    setup()
    {
        std::mt19937_64 rng(3);
        codes = xt::xtensor<std::uint8_t, 2>::from_shape({256, 784});
        for (auto& c : codes) c = static_cast<std::uint8_t>(rng() % 3 == 0 ? 0 : rng() & 0xFF);
        x = xt::xtensor<float, 2>::from_shape(codes.shape());
        for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(codes.data()[i]) / 255.0f;
        calibrate(bnn, x);
        packed = lowbit::deploy::compile(bnn);
        packed_bytes = lowbit::deploy::packed_bytes(packed);
        auto binary = make_all_binary();
        calibrate(binary, x);
        packed_binary = lowbit::deploy::compile(binary);
        packed_binary_bytes = lowbit::deploy::packed_bytes(packed_binary);
        // The float model: the same function with Q(w) as float weights, and the same BatchNorm state.
        lowbit::io::archive a = lowbit::train::to_archive(bnn);
        lowbit::train::from_archive(flt, a);
        auto copy_q = [](auto& from, auto& to) {
            auto const q = from.weight().forward_values({.training = false});
            to.weight().assign(std::vector<float>(q.begin(), q.end()));
        };
        copy_q(bnn.layer<0>(), flt.layer<0>());
        copy_q(bnn.layer<3>(), flt.layer<3>());
        copy_q(bnn.layer<6>(), flt.layer<6>());
        float_bytes = lowbit::io::archive_bytes(lowbit::train::to_archive(flt)).size();
    }
};

setup& models()
{
    static setup s;
    return s;
}

/// The binarized CNN and its float twin, as for the MLP.
auto make_bnn_cnn()
{
    return nn::cnn({.seed = 1}, ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{},
                   ste::sign_activation{}, nn::bias_head);
}

auto make_float_cnn()
{
    return nn::cnn({.seed = 1}, nn::float_weights, nn::float_weights, nn::float_weights, ste::sign_activation{},
                   nn::bias_head);
}

struct cnn_setup {
    decltype(make_bnn_cnn()) bnn = make_bnn_cnn();
    decltype(make_float_cnn()) flt = make_float_cnn();
    lowbit::deploy::packed_cnn packed;
    xt::xtensor<std::uint8_t, 4> codes;
    xt::xtensor<float, 4> x;
    std::size_t packed_bytes = 0, float_bytes = 0;

    cnn_setup()
    {
        std::mt19937_64 rng(3);
        codes = xt::xtensor<std::uint8_t, 4>::from_shape({256, 1, 28, 28});
        for (auto& c : codes) c = static_cast<std::uint8_t>(rng() % 3 == 0 ? 0 : rng() & 0xFF);
        x = xt::xtensor<float, 4>::from_shape(codes.shape());
        for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(codes.data()[i]) / 255.0f;
        calibrate(bnn, x);
        packed = lowbit::deploy::compile(bnn);
        packed_bytes = lowbit::deploy::packed_bytes(packed);
        lowbit::io::archive a = lowbit::train::to_archive(bnn);
        lowbit::train::from_archive(flt, a);
        auto copy_q = [](auto& from, auto& to) {
            auto const q = from.weight().forward_values({.training = false});
            to.weight().assign(std::vector<float>(q.begin(), q.end()));
        };
        copy_q(bnn.layer<0>().layer<0>(), flt.layer<0>().layer<0>());
        copy_q(bnn.layer<1>().layer<0>(), flt.layer<1>().layer<0>());
        copy_q(bnn.layer<3>().layer<0>(), flt.layer<3>().layer<0>());
        copy_q(bnn.layer<4>().layer<0>(), flt.layer<4>().layer<0>());
        copy_q(bnn.layer<7>(), flt.layer<7>());
        copy_q(bnn.layer<10>(), flt.layer<10>());
        float_bytes = lowbit::io::archive_bytes(lowbit::train::to_archive(flt)).size();
    }
};

cnn_setup& cnn_models()
{
    static cnn_setup s;
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

void BM_packed_codes(benchmark::State& state)
{
    setup& s = models();
    threads const t(state.range(0));
    auto const batch = static_cast<std::size_t>(state.range(1));
    xt::xtensor<std::uint8_t, 2> const in = xt::view(s.codes, xt::range(0, batch), xt::all());
    for (auto _ : state) {
        xt::xtensor<float, 2> l = s.packed.forward(in);
        benchmark::DoNotOptimize(l.data());
    }
    counters(state, batch, s.packed_bytes);
}

void BM_packed_binary(benchmark::State& state)
{
    setup& s = models();
    threads const t(state.range(0));
    auto const batch = static_cast<std::size_t>(state.range(1));
    xt::xtensor<std::uint8_t, 2> const in = xt::view(s.codes, xt::range(0, batch), xt::all());
    for (auto _ : state) {
        xt::xtensor<float, 2> l = s.packed_binary.forward(in);
        benchmark::DoNotOptimize(l.data());
    }
    counters(state, batch, s.packed_binary_bytes);
}

void BM_packed_float(benchmark::State& state)
{
    setup& s = models();
    threads const t(state.range(0));
    auto const batch = static_cast<std::size_t>(state.range(1));
    xt::xtensor<float, 2> const in = xt::view(s.x, xt::range(0, batch), xt::all());
    for (auto _ : state) {
        xt::xtensor<float, 2> l = s.packed.forward(in);
        benchmark::DoNotOptimize(l.data());
    }
    counters(state, batch, s.packed_bytes);
}

void BM_float(benchmark::State& state)
{
    setup& s = models();
    threads const t(state.range(0));
    auto const batch = static_cast<std::size_t>(state.range(1));
    xt::xtensor<float, 2> const in = xt::view(s.x, xt::range(0, batch), xt::all());
    for (auto _ : state) {
        xt::xtensor<float, 2> l = s.flt.forward(in, {.training = false});
        benchmark::DoNotOptimize(l.data());
    }
    counters(state, batch, s.float_bytes);
}

void BM_cnn_packed_codes(benchmark::State& state)
{
    cnn_setup& s = cnn_models();
    threads const t(state.range(0));
    auto const batch = static_cast<std::size_t>(state.range(1));
    xt::xtensor<std::uint8_t, 4> const in = xt::view(s.codes, xt::range(0, batch));
    for (auto _ : state) {
        xt::xtensor<float, 2> l = s.packed.forward(in);
        benchmark::DoNotOptimize(l.data());
    }
    counters(state, batch, s.packed_bytes);
}

void BM_cnn_float(benchmark::State& state)
{
    cnn_setup& s = cnn_models();
    threads const t(state.range(0));
    auto const batch = static_cast<std::size_t>(state.range(1));
    xt::xtensor<float, 4> const in = xt::view(s.x, xt::range(0, batch));
    for (auto _ : state) {
        xt::xtensor<float, 2> l = s.flt.forward(in, {.training = false});
        benchmark::DoNotOptimize(l.data());
    }
    counters(state, batch, s.float_bytes);
}

void shapes(benchmark::internal::Benchmark* b)
{
    b->ArgNames({"threads", "batch"});
    for (std::int64_t th : {1, 2})
        for (std::int64_t batch : {1, 256}) b->Args({th, batch});
    b->UseRealTime();
}

BENCHMARK(BM_packed_codes)->Name("packed/codes")->Apply(shapes);
BENCHMARK(BM_packed_float)->Name("packed/float")->Apply(shapes);
BENCHMARK(BM_packed_binary)->Name("packed_all_binary/codes")->Apply(shapes);
BENCHMARK(BM_float)->Name("float")->Apply(shapes);
BENCHMARK(BM_cnn_packed_codes)->Name("cnn/packed/codes")->Apply(shapes);
BENCHMARK(BM_cnn_float)->Name("cnn/float")->Apply(shapes);

} // namespace
