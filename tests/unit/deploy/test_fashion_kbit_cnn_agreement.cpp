// SPDX-License-Identifier: MIT
// The k-bit CNN deploy path end to end on real data: nn::cnn with 4-bit PACT activations (8-bit DoReFa first
// convolution and last layer, 2-bit DoReFa everywhere else, bias head; widths 8 / 16 / 64, half nn::cnn's
// defaults, so that the float model's evaluation of all 10000 images stays within CI's time in Debug and ASan
// builds) trained for one epoch on 3000 Fashion-MNIST images with BinaryConnect (PACT's alphas learned),
// compiled with lowbit-train's input standardisation folded into the input map, and run on the WHOLE test set
// (10000 images) beside the fake-quant model's evaluation forward:
//  - the argmax is the same for every image;
//  - the codes of all five code layers (four convolutions, the hidden dense layer) are the same, up to the
//    fake-quant model's own float sums putting a value within rounding of a PACT step on the other side
//    (docs/deploy.md; the padded taps are exact, per padding class in the first convolution);
//  - the logits agree within the float summation bound where every code agrees;
//  - the packed file round-trips, and the packed model is better than chance.
// Skipped when Debian's dataset-fashion-mnist is not installed.
#include <lowbit/data/fashion_mnist.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_kbit_cnn_file.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/optim/adam.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/trainer.hpp>

#include "../../support/agreement.hpp"
#include "../../support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

using namespace lowbit;
namespace ste = lowbit::ste;
using lowbit::test::argmax_row;

namespace {

/// Adds, per image, the codes of a [n, C, H, W] (or [n, F]) PACT activation of alpha @p alpha that differ from
/// the packed NHWC (or [n, F]) codes to @p per_image; returns the codes strictly between 0 and n.
template <class F>
std::size_t count_codes(F const& f, float alpha, int bits, xt::xtensor<std::uint8_t, 2> const& packed,
                        std::size_t* per_image)
{
    double const levels = (1 << bits) - 1;
    std::size_t const n = f.shape(0), c = f.shape(1), plane = f.size() / (n * c);
    std::size_t inner = 0;
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t ch = 0; ch < c; ++ch)
            for (std::size_t p = 0; p < plane; ++p) {
                double const code = std::nearbyint(f.data()[(i * c + ch) * plane + p] / alpha * levels);
                std::uint8_t const q = packed.data()[(i * plane + p) * c + ch];
                per_image[i] += code != q;
                inner += q != 0 && q != levels;
            }
    return inner;
}

template <class Act>
float alpha_of(Act& act)
{
    return std::abs(act.template layer<1>().quantizer().alpha());
}

} // namespace

TEST_CASE("a trained 4-bit PACT CNN and its packed model agree on all 10000 Fashion-MNIST test images" *
          doctest::skip(!test::have_fashion_mnist()))
{
    constexpr int bits = 4;
    auto const start = std::chrono::steady_clock::now();
    std::size_t const train_images = 3000;
    auto const train = data::load_fashion_mnist(data::split::train);
    auto const test = data::load_fashion_mnist(data::split::test);
    // lowbit-train's standardisation, whose map into the 8-bit codes the first convolution folds in.
    auto const mean = static_cast<float>(xt::mean(train.images)()), sd = static_cast<float>(xt::stddev(train.images)());
    deploy::input_map const map{.scale = static_cast<float>(1.0 / (255.0 * static_cast<double>(sd))),
                                .offset = static_cast<float>(-static_cast<double>(mean) / static_cast<double>(sd))};
    xt::xtensor<float, 2> const flat = xt::view(train.images, xt::range(0, train_images), xt::all());
    xt::xtensor<float, 4> const x = nn::as_images((flat - mean) / sd, 1, 28, 28);
    xt::xtensor<std::uint8_t, 1> const y = xt::view(train.labels, xt::range(0, train_images));

    std::size_t const width1 = 8, width2 = 16, hidden = 64;
    auto model = nn::cnn({.width1 = width1, .width2 = width2, .hidden = hidden, .seed = 1}, ste::dorefa_weight<2>{},
                         ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::pact<bits>{{.alpha = 3.0f}},
                         nn::bias_head);
    train::trainer t{model, train::binary_connect{}, optim::adam({.lr = 0.01f})};
    (void)t.fit(x, y, {.epochs = 1, .batch = 100, .seed = 7});
    double const trained = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    deploy::packed_kbit_cnn const packed = deploy::compile(model, {.input = map});
    test::temp_dir dir("deploy_fashion_kbit_cnn");
    deploy::save_packed(dir / "cnn.lbpk", packed);
    deploy::packed_kbit_cnn const loaded = deploy::load_packed_kbit_cnn(dir / "cnn.lbpk");

    std::size_t const n = test.images.shape(0);
    REQUIRE(n == 10000);
    xt::xtensor<float, 4> const images = nn::as_images((test.images - mean) / sd, 1, 28, 28);
    xt::xtensor<std::uint8_t, 4> const codes = packed.quantize(images);
    // The map gives back the pixels: the packed model reads the file's bytes.
    std::size_t off_pixels = 0;
    for (std::size_t i = 0; i < codes.size(); ++i)
        off_pixels += codes.data()[i] != static_cast<std::uint8_t>(std::lround(test.images.data()[i] * 255.0f));
    CHECK(off_pixels == 0);

    nn::forward_context const eval{.training = false};
    float const alphas[] = {alpha_of(model.layer<0>().layer<2>()), alpha_of(model.layer<1>().layer<2>()),
                            alpha_of(model.layer<3>().layer<2>()), alpha_of(model.layer<4>().layer<2>()),
                            alpha_of(model.layer<9>())};
    xt::xtensor<float, 2> fake = xt::xtensor<float, 2>::from_shape({n, 10});
    xt::xtensor<float, 2> logits = xt::xtensor<float, 2>::from_shape({n, 10});
    std::vector<std::size_t> per_image(n, 0);
    std::size_t inner = 0;
    std::size_t const chunk = 1000;
    for (std::size_t i0 = 0; i0 < n; i0 += chunk) {
        xt::xtensor<float, 4> const xi = xt::view(images, xt::range(i0, i0 + chunk), xt::all(), xt::all(), xt::all());
        xt::xtensor<std::uint8_t, 4> const qi = xt::view(codes, xt::range(i0, i0 + chunk), xt::all(), xt::all(), xt::all());
        auto const a1 = model.layer<0>().forward(xi, eval);
        auto const a2 = model.layer<1>().forward(a1, eval);
        auto const a3 = model.layer<3>().forward(model.layer<2>().forward(a2, eval), eval);
        auto const a4 = model.layer<4>().forward(a3, eval);
        auto const f = model.layer<6>().forward(model.layer<5>().forward(a4, eval), eval);
        auto const a5 = model.layer<9>().forward(model.layer<8>().forward(model.layer<7>().forward(f, eval), eval), eval);
        xt::xtensor<float, 2> const l = model.layer<10>().forward(a5, eval);
        std::copy(l.begin(), l.end(), fake.data() + i0 * 10);
        // One packed pass gives every code layer; the logits are the last layer on the last of them, which is
        // what forward() computes (checked on the first chunk, with the model loaded from the file).
        std::vector<xt::xtensor<std::uint8_t, 2>> const q = packed.trace(qi);
        REQUIRE(q.size() == 5);
        deploy::packed_kbit_dense const& last = packed.dense().back();
        last.forward(kernels::matrix_view<std::uint8_t>{q[4].data(), chunk, hidden, hidden}, logits.data() + i0 * 10, 10);
        if (i0 == 0) {
            xt::xtensor<float, 2> const part = xt::view(logits, xt::range(0, chunk), xt::all());
            CHECK(loaded.forward(qi) == part);
            CHECK(packed.forward(xi) == part);
        }
        std::size_t* const d = per_image.data() + i0;
        inner += count_codes(a1, alphas[0], bits, q[0], d) + count_codes(a2, alphas[1], bits, q[1], d) +
                 count_codes(a3, alphas[2], bits, q[2], d) + count_codes(a4, alphas[3], bits, q[3], d) +
                 count_codes(a5, alphas[4], bits, q[4], d);
    }
    std::size_t differing = 0, images_with_differences = 0;
    for (std::size_t const d : per_image) {
        differing += d;
        images_with_differences += d != 0;
    }
    std::size_t const codes_per_image = 2 * width1 * 28 * 28 + 2 * width2 * 14 * 14 + hidden;

    std::vector<double> const tolerance = test::logit_tolerance(model.layer<10>(), alphas[4]);
    std::size_t same_class = 0, correct = 0, fake_correct = 0, outside = 0;
    double worst = 0.0, worst_ratio = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t const a = argmax_row(fake, i), b = argmax_row(logits, i);
        same_class += a == b;
        correct += b == test.labels(i);
        fake_correct += a == test.labels(i);
        if (per_image[i] != 0) continue;
        for (std::size_t j = 0; j < 10; ++j) {
            double const e = std::abs(static_cast<double>(fake(i, j)) - logits(i, j));
            worst = std::max(worst, e);
            worst_ratio = std::max(worst_ratio, e / tolerance[j]);
            outside += e > tolerance[j];
        }
    }
    double const accuracy = static_cast<double>(correct) / static_cast<double>(n);
    double const total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    MESSAGE("4-bit PACT CNN: packed accuracy " << accuracy << ", fake-quant "
                                               << static_cast<double>(fake_correct) / static_cast<double>(n)
                                               << "; argmax agreement " << same_class << "/" << n
                                               << "; differing codes " << differing << " of " << codes_per_image * n
                                               << " in " << images_with_differences << " images (" << inner
                                               << " codes strictly between 0 and 15); largest logit difference "
                                               << worst << " (" << worst_ratio << " of the tolerance); training "
                                               << trained << " s, total " << total << " s");
    CHECK(same_class == n);
    // A float GEMM's summation order can move a value within rounding of a PACT step to the next code, in a
    // handful of images at most -- a wrong threshold or padding class would show in thousands.
    CHECK(images_with_differences <= 5);
    CHECK(inner > codes_per_image * n / 20);  // codes between 0 and 15 occur: the levels are exercised
    CHECK(outside == 0);
    CHECK(accuracy > 0.5);  // one epoch on 3000 images (chance is 0.1)
}
