// SPDX-License-Identifier: MIT
// k-bit activations end to end on real data: MLPs with 4-bit and 2-bit PACT activations (8-bit DoReFa first
// and last layers, 2-bit DoReFa or XNOR hidden layer, bias head) trained for one epoch on 6000 Fashion-MNIST
// images with BinaryConnect (PACT's alpha learned), compiled, and run on the WHOLE test set (10000 images)
// beside the fake-quant model's evaluation forward:
//  - the argmax is the same for every image;
//  - the hidden codes of both layers are the same (the thresholds are exact; only the fake-quant model's own
//    float sums could put a BatchNorm output within rounding of a PACT step on the other side, docs/deploy.md);
//  - the logits agree within the float summation bound (K + 2) 2^-23 (a sum_k |Q_jk| + |b_j| + 2) where the
//    hidden codes agree.
// Skipped when Debian's dataset-fashion-mnist is not installed.
#include <lowbit/data/fashion_mnist.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/optim/adam.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/trainer.hpp>

#include "../../support/agreement.hpp"

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <system_error>
#include <vector>

using namespace lowbit;
namespace ste = lowbit::ste;
using lowbit::test::argmax_row;

namespace {

template <class Hidden, int Bits>
struct recipe {
    using hidden = Hidden;
    static constexpr int bits = Bits;
};

} // namespace

TEST_CASE_TEMPLATE("trained PACT MLPs and their packed models agree on all 10000 Fashion-MNIST test images" *
                       doctest::skip(!test::have_fashion_mnist()),
                   R, recipe<ste::dorefa_weight<2>, 4>, recipe<ste::xnor_weight<>, 2>)
{
    constexpr int bits = R::bits;
    std::size_t const hidden = 128, train_images = 6000;
    auto const train = data::load_fashion_mnist(data::split::train);
    auto const test = data::load_fashion_mnist(data::split::test);
    xt::xtensor<float, 2> const x = xt::view(train.images, xt::range(0, train_images), xt::all());
    xt::xtensor<std::uint8_t, 1> const y = xt::view(train.labels, xt::range(0, train_images));

    auto model = nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = nn::init::uniform_unit, .seed = 1},
                         typename R::hidden{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{},
                         ste::pact<bits>{{.alpha = 3.0f}}, nn::bias_head);
    train::trainer t{model, train::binary_connect{}, optim::adam({.lr = 0.01f})};
    (void)t.fit(x, y, {.epochs = 1, .batch = 100, .seed = 7});

    // Pixels p / 255 are the codes p of the default input map: the packed model sees the float model's input.
    deploy::packed_kbit_mlp const packed = deploy::compile(model);
    std::size_t const n = test.images.shape(0);
    REQUIRE(n == 10000);
    nn::forward_context const eval{.training = false};
    xt::xtensor<float, 2> const fake = model.forward(test.images, eval);
    xt::xtensor<std::uint8_t, 2> const codes = packed.quantize(test.images);
    xt::xtensor<float, 2> const logits = packed.forward(codes);

    // Hidden codes of the fake-quant model, layer by layer (dense, BN, ReLU + PACT), against the packed codes.
    auto const a1 = model.template layer<2>().forward(model.template layer<1>().forward(model.template layer<0>().forward(test.images, eval), eval), eval);
    auto const a2 = model.template layer<5>().forward(model.template layer<4>().forward(model.template layer<3>().forward(a1, eval), eval), eval);
    float const alpha1 = std::abs(model.template layer<2>().template layer<1>().quantizer().alpha());
    float const alpha2 = std::abs(model.template layer<5>().template layer<1>().quantizer().alpha());
    double const levels = (1 << bits) - 1;
    xt::xtensor<std::uint8_t, 2> const p1 = packed.codes(codes, 0), p2 = packed.codes(codes, 1);
    std::vector<char> same_codes(n, 1);
    std::size_t differing = 0, inner = 0;
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < hidden; ++j) {
            double const c1 = std::nearbyint(a1(i, j) / alpha1 * levels), c2 = std::nearbyint(a2(i, j) / alpha2 * levels);
            std::size_t const d = (c1 != p1(i, j)) + (c2 != p2(i, j));
            inner += (p1(i, j) != 0 && p1(i, j) != levels) + (p2(i, j) != 0 && p2(i, j) != levels);
            differing += d;
            if (d != 0) same_codes[i] = 0;
        }

    // The tolerance of the logits: the fake-quant model sums K = hidden float products Q_jk a_k, each a_k
    // within 2^-23 of alpha code / n, then adds b_j; the packed model rounds (alpha / n) v / 255 + b_j once.
    std::vector<double> const tolerance = test::logit_tolerance(model.template layer<6>(), alpha2);

    std::size_t same_class = 0, correct = 0, fake_correct = 0, outside = 0;
    double worst = 0.0, worst_ratio = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t const a = argmax_row(fake, i), b = argmax_row(logits, i);
        same_class += a == b;
        correct += b == test.labels(i);
        fake_correct += a == test.labels(i);
        if (!same_codes[i]) continue;
        for (std::size_t j = 0; j < 10; ++j) {
            double const d = std::abs(static_cast<double>(fake(i, j)) - logits(i, j));
            worst = std::max(worst, d);
            worst_ratio = std::max(worst_ratio, d / tolerance[j]);
            outside += d > tolerance[j];
        }
    }
    double const accuracy = static_cast<double>(correct) / static_cast<double>(n);
    MESSAGE(bits << "-bit PACT: packed accuracy " << accuracy << ", fake-quant "
                 << static_cast<double>(fake_correct) / static_cast<double>(n) << "; argmax agreement " << same_class
                 << "/" << n << "; differing hidden codes " << differing << " of " << 2 * hidden * n << " ("
                 << inner << " strictly between 0 and " << levels << "); alpha " << alpha1 << ", " << alpha2
                 << "; largest logit difference " << worst << " (" << worst_ratio << " of the tolerance)");
    CHECK(same_class == n);
    // A wrong threshold would show as thousands; the fake-quant model's float sums may move a handful.
    CHECK(differing <= 40);  // as test_deploy_fashion: 0 in CI's builds, a handful in others
    CHECK(inner > hidden * n / 10);  // the codes between 0 and n occur: the levels are exercised
    CHECK(outside == 0);
    CHECK(accuracy > 0.6);
}
