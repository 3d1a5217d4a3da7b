// SPDX-License-Identifier: MIT
// Activation quantization as a layer: PACT's values, its STE gate, and its alpha trained by the trainer.
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/quantize_activation.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/optim/adam.hpp>
#include <lowbit/quant/ste/pact.hpp>
#include <lowbit/train/full_precision.hpp>
#include <lowbit/train/trainer.hpp>

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>

using namespace lowbit;

TEST_CASE("quantize_activation: PACT values, gradient gate and learned alpha")
{
    nn::quantize_activation layer(ste::pact<2>({.alpha = 3.0f}));
    xt::xtensor<float, 2> const x = {{-1.0f, 0.4f, 1.6f, 5.0f}};
    auto const y = layer.forward(x, {.training = true});
    // 2 bits on [0, 3]: levels 0, 1, 2, 3.
    CHECK(y(0, 0) == 0.0f);
    CHECK(y(0, 1) == 0.0f);
    CHECK(y(0, 2) == doctest::Approx(2.0f));
    CHECK(y(0, 3) == doctest::Approx(3.0f));
    std::size_t params = 0;
    layer.for_each_parameter([&](nn::parameter& p) {
        ++params;
        CHECK(p.name == "pact.alpha");
        CHECK(p.kind == nn::parameter_kind::clipping);
        CHECK(p.value[0] == 3.0f);
        std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    });
    CHECK(params == 1);
    auto const dx = layer.backward(xt::xtensor<float, 2>{{1.0f, 1.0f, 1.0f, 1.0f}});
    CHECK(dx(0, 0) == 0.0f);  // below 0: no gradient
    CHECK(dx(0, 1) == 1.0f);  // inside: straight through
    CHECK(dx(0, 2) == 1.0f);
    CHECK(dx(0, 3) == 0.0f);  // above alpha: the gradient goes to alpha
    layer.for_each_parameter([](nn::parameter& p) { CHECK(p.grad[0] == doctest::Approx(1.0f)); });
}

TEST_CASE("the trainer updates PACT's alpha, and CG-PACT's also moves when no input reaches alpha")
{
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({64, 4});
    xt::xtensor<std::uint8_t, 1> y = xt::xtensor<std::uint8_t, 1>::from_shape({64});
    for (std::size_t i = 0; i < 64; ++i) {
        for (std::size_t j = 0; j < 4; ++j) x(i, j) = static_cast<float>((i * 7 + j * 3) % 11) / 5.0f - 1.0f;
        y(i) = x(i, 0) > x(i, 1) ? 1 : 0;
    }
    auto trained_alpha = [&](auto quantizer) {
        nn::sequential model{nn::dense<>({.in = 4, .out = 8, .seed = 3}), nn::batch_norm<2>({.channels = 8}), nn::relu{},
                             nn::quantize_activation(quantizer), nn::dense<>({.in = 8, .out = 2, .seed = 4})};
        train::trainer t{model, train::full_precision{}, optim::adam({.lr = 0.05f})};
        (void)t.fit(x, y, {.epochs = 5, .batch = 16, .seed = 1});
        float alpha = 0.0f;
        model.for_each_parameter([&](nn::parameter& p) {
            if (p.kind == nn::parameter_kind::clipping) alpha = p.value[0];
        });
        return alpha;
    };
    // PACT: alpha only gets gradient from inputs >= alpha. BN + ReLU outputs reach 1, not 10.
    CHECK(trained_alpha(ste::pact<2>({.alpha = 1.0f})) != 1.0f);
    CHECK(trained_alpha(ste::pact<2>({.alpha = 10.0f})) == 10.0f);
    // CG-PACT adds the rounding error of inputs below alpha, so alpha is trained there too (Jin et al.).
    CHECK(trained_alpha(ste::pact<2, ste::alpha_gradient::calibrated>({.alpha = 10.0f})) != 10.0f);
}
