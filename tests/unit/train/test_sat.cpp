// SPDX-License-Identifier: MIT
// SAT: the ready-made models with quantized activations, the rescaled last layer during training, and full
// SAT runs (quantized and float) that learn a toy problem.
#include <lowbit/nn/models.hpp>
#include <lowbit/optim/schedule/cosine.hpp>
#include <lowbit/optim/sgd.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/sat.hpp>
#include <lowbit/train/trainer.hpp>

#include "../../support/toy_set.hpp"

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>

#include <cmath>
#include <random>
#include <type_traits>
#include <vector>

using namespace lowbit;

namespace {
using lowbit::test::toy;

/// Ten Gaussian blobs in 32 dimensions (the MLP's input width is set to 32).
toy blobs(std::size_t n, unsigned seed)
{
    std::mt19937 gen(seed), centres_gen(11);
    std::normal_distribution<float> d;
    xt::xtensor<float, 2> c = xt::xtensor<float, 2>::from_shape({10, 32});
    for (auto& v : c) v = 1.2f * d(centres_gen);
    toy t{xt::xtensor<float, 2>::from_shape({n, 32}), xt::xtensor<std::uint8_t, 1>::from_shape({n})};
    for (std::size_t i = 0; i < n; ++i) {
        t.y(i) = static_cast<std::uint8_t>(i % 10);
        for (std::size_t j = 0; j < 32; ++j) t.x(i, j) = c(t.y(i), j) + d(gen);
    }
    return t;
}

template <class Model>
std::size_t clipping_parameters(Model& m)
{
    std::size_t n = 0;
    m.for_each_parameter([&](nn::parameter const& p) { n += p.kind == nn::parameter_kind::clipping; });
    return n;
}

template <class Model>
std::size_t activation_layers(Model& m)
{
    std::size_t n = 0;
    m.for_each_leaf([&](auto& layer) {
        if constexpr (requires { layer.quantizer(); }) ++n;
    });
    return n;
}
} // namespace

static_assert(train::ShadowWeightMethod<train::sat<>>);
static_assert(train::SatRescaled<ste::sat_rescale<ste::dorefa_weight<4>>> && !train::SatRescaled<ste::dorefa_weight<4>>);

TEST_CASE("mlp and cnn quantize the input activations of every layer but the first")
{
    using a4 = ste::calibrated_t<ste::pact<4>>;
    auto mlp = nn::mlp({.inputs = 32, .hidden = 16}, ste::dorefa_weight<4>{}, ste::dorefa_weight<8>{},
                       ste::dorefa_weight<8>{}, a4({.alpha = 10.0f}));
    CHECK(activation_layers(mlp) == 2);
    CHECK(clipping_parameters(mlp) == 2);  // one alpha per quantized activation
    auto cnn = nn::cnn({.width1 = 4, .width2 = 4, .hidden = 8}, ste::dorefa_weight<4>{}, ste::dorefa_weight<8>{},
                       ste::dorefa_weight<8>{}, a4({.alpha = 8.0f}));
    CHECK(activation_layers(cnn) == 5);  // after the four conv blocks and the hidden dense layer
    // Signed binary activations replace the ReLU (sign of a ReLU output would be +1 everywhere).
    auto bnn = nn::mlp({.inputs = 32, .hidden = 16}, ste::xnor_weight<>{}, ste::dorefa_weight<8>{},
                       ste::dorefa_weight<8>{}, ste::sign_activation{}, nn::bias_head);
    std::size_t relus = 0, biases = 0;
    bnn.for_each_leaf([&](auto& layer) { relus += std::is_same_v<std::remove_cvref_t<decltype(layer)>, nn::relu>; });
    bnn.for_each_parameter([&](nn::parameter const& p) { biases += p.kind == nn::parameter_kind::bias; });
    CHECK(activation_layers(bnn) == 2);
    CHECK(relus == 0);
    CHECK(biases == 1);  // the bias head's classifier
    auto plain = nn::mlp({.inputs = 32, .hidden = 16}, nn::float_weights);
    CHECK(activation_layers(plain) == 0);
    CHECK(clipping_parameters(plain) == 0);
}

TEST_CASE("sat trains a 4/4-bit MLP, and the last layer's forward weights have variance 1/n_out")
{
    toy const train_set = blobs(2000, 1), test_set = blobs(500, 2);
    using w4 = ste::dorefa_weight<4>;
    using last = ste::sat_rescale<ste::dorefa_weight<8>>;
    auto model = nn::mlp({.inputs = 32, .hidden = 64, .classes = 10}, w4{}, ste::dorefa_weight<8>{}, last{},
                         ste::calibrated_t<ste::pact<4>>({.alpha = 10.0f}));
    train::trainer t{model, train::sat{}, optim::sgd({.lr = 0.05f, .momentum = 0.9f, .nesterov = true}),
                     optim::schedule::cosine{.lr_max = 0.05f, .lr_min = 0.0f, .epochs = 3}};
    float const before = t.evaluate(test_set.x, test_set.y).loss;
    auto const r = t.fit(train_set.x, train_set.y, {.epochs = 3, .batch = 50, .seed = 3});
    CHECK(r.epochs == 3);
    auto const after = t.evaluate(test_set.x, test_set.y);
    CHECK(after.loss < before);
    // Chance is 0.1. The float sums' order (OpenBLAS kernel, threads, -march) changes the trajectory, not the
    // outcome: 0.994-1.000 over 18 shuffling seeds, in Debug and -O2 -march=native, under both OpenBLAS kernels.
    CHECK(after.accuracy > 0.8f);

    // The last dense layer (the third weight) is used as Q* with Var[Q*] = 1/n_out, n_out = 10 classes.
    std::size_t i = 0;
    model.for_each_weight([&](auto& w) {
        if (i++ != 2) return;
        auto const q = w.forward_values({.training = true});
        double mean = 0.0, var = 0.0;
        for (float v : q) mean += v;
        mean /= static_cast<double>(q.size());
        for (float v : q) var += (v - mean) * (v - mean);
        var /= static_cast<double>(q.size() - 1);
        CHECK(var * 10.0 == doctest::Approx(1.0).epsilon(1e-4));
    });
}

TEST_CASE("sat on a full-precision model: clamp and rescale the last layer")
{
    toy const train_set = blobs(2000, 4), test_set = blobs(500, 5);
    auto model = nn::mlp({.inputs = 32, .hidden = 64, .classes = 10}, nn::float_weights, nn::float_weights,
                         ste::sat_rescale<ste::tanh_clamp<>>{});
    train::trainer t{model, train::sat{}, optim::sgd({.lr = 0.05f, .momentum = 0.9f})};
    (void)t.fit(train_set.x, train_set.y, {.epochs = 2, .batch = 50, .seed = 6});
    CHECK(t.evaluate(test_set.x, test_set.y).accuracy > 0.8f);  // 0.994-0.998 over 18 seeds, any build (see above)
}

TEST_CASE("sat in evaluation folds the scale into the bias: logits are the training form divided by the scale")
{
    nn::dense<ste::sat_rescale<ste::dorefa_weight<4>>> layer({.in = 6, .out = 3, .bias = true, .seed = 5});
    layer.for_each_weight([](auto& w) { w.bind(nn::shadow_state{}, 1); });
    layer.for_each_parameter([](nn::parameter const& p) {
        for (std::size_t i = 0; i < p.value.size(); ++i) p.value[i] = 0.5f + static_cast<float>(i);  // a real bias
    });
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({4, 6});
    for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = std::sin(static_cast<float>(i));
    auto const train_form = layer.forward(x, {.training = true});
    auto const eval_form = layer.forward(x, {.training = false});
    float scale = 0.0f;
    std::vector<float> q;  // the evaluation form's weights Q (unscaled), [out = 3, in = 6]
    layer.for_each_weight([&](auto& w) {
        scale = w.policy().scale();
        auto const v = w.forward_values({.training = false}, true);
        q.assign(v.begin(), v.end());
    });
    std::vector<float> bias;
    layer.for_each_parameter([&](nn::parameter const& p) { bias.assign(p.value.begin(), p.value.end()); });
    REQUIRE(scale > 0.0f);
    REQUIRE(q.size() == 18);
    REQUIRE(bias.size() == 3);
    CHECK(scale != doctest::Approx(1.0f));
    // Exactly, eval * scale = (x Q^T + b / scale) scale = x (scale Q)^T + b = train. Each form is a float sum of
    // K = 6 products (in whatever order the GEMM takes: OpenBLAS's kernel, -march) plus the bias, so it is within
    // gamma_(K+1) (sum_k |x_k w_jk| + |bias|) of its exact value (Higham 3.1; u = 2^-24, gamma_m = m u / (1 - m u)),
    // with w = fl(scale Q) and bias b for the training form, w = Q and bias fl(b / scale) for the evaluation form
    // (one more u each); eval * scale is formed exactly in double. So
    // |eval * scale - train| <= 2 gamma_(K+3) (scale sum_k |x_k Q_jk| + |b_j|), in any summation order.
    double const u = std::ldexp(1.0, -24);
    double const gamma = 9.0 * u / (1.0 - 9.0 * u);
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t j = 0; j < 3; ++j) {
            double abs_sum = 0.0;
            for (std::size_t k = 0; k < 6; ++k) abs_sum += std::abs(static_cast<double>(x(i, k)) * q[j * 6 + k]);
            double const bound = 2.0 * gamma * (scale * abs_sum + std::abs(bias[j]));
            CAPTURE(i);
            CAPTURE(j);
            CHECK(std::abs(static_cast<double>(eval_form(i, j)) * scale - train_form(i, j)) <= bound);
        }
}
