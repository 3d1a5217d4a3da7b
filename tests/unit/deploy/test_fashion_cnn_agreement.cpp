// SPDX-License-Identifier: MIT
// The CNN deploy path end to end on real data: nn::cnn's binarized CNN (8-bit DoReFa first convolution and
// last layer, XNOR everywhere else, sign activations, bias head; widths 8 / 16 / 64, half nn::cnn's defaults,
// so that the float model's evaluation of all 10000 images stays within CI's time in Debug and ASan builds --
// lowbit-infer's ctest runs the default widths) trained for one epoch on 3000 Fashion-MNIST images with
// BinaryConnect, compiled, and run on the WHOLE test set (10000 images) beside the fake-quant model's
// evaluation forward:
//  - the argmax is the same for every image;
//  - the hidden sign bits of all five sign layers (four convolutions, the hidden dense layer) are the same, up
//    to the fake-quant model's own float rounding putting a BatchNorm output within rounding of 0 on the other
//    side (docs/deploy.md; the padded taps are exact: the float model pads with 0, the packed one too);
//  - the logits agree within the float summation bound (K + 2) 2^-23 (sum_k |Q_jk| + |b_j| + 2) where the
//    hidden signs agree;
//  - the packed file round-trips and the packed model is better than chance.
// Skipped when Debian's dataset-fashion-mnist is not installed.
#include <lowbit/data/fashion_mnist.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_cnn_file.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
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
#include <bit>
#include <chrono>
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

/// Per image: the +-1 values of a [n, C, H, W] sign layer against the packed NHWC bits; adds the differing
/// signs of each image to @p per_image.
void count_conv(xt::xtensor<float, 4> const& f, xt::xtensor<std::uint64_t, 2> const& bits, std::size_t* per_image)
{
    std::size_t const n = f.shape(0), c = f.shape(1), plane = f.shape(2) * f.shape(3), words = bits.shape(1);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t ch = 0; ch < c; ++ch)
            for (std::size_t p = 0; p < plane; ++p) {
                bool const plus = f.data()[(i * c + ch) * plane + p] > 0.0f;
                per_image[i] += plus != (((bits.data()[(i * plane + p) * words + ch / 64] >> (ch % 64)) & 1u) != 0);
            }
}

void count_dense(xt::xtensor<float, 2> const& f, xt::xtensor<std::uint64_t, 2> const& bits, std::size_t* per_image)
{
    for (std::size_t i = 0; i < f.shape(0); ++i)
        for (std::size_t j = 0; j < f.shape(1); ++j)
            per_image[i] += (f(i, j) > 0.0f) != (((bits(i, j / 64) >> (j % 64)) & 1u) != 0);
}

} // namespace

TEST_CASE("a trained binarized CNN and its packed model agree on all 10000 Fashion-MNIST test images" *
          doctest::skip(!test::have_fashion_mnist()))
{
    auto const start = std::chrono::steady_clock::now();
    std::size_t const train_images = 3000;
    auto const train = data::load_fashion_mnist(data::split::train);
    auto const test = data::load_fashion_mnist(data::split::test);
    xt::xtensor<float, 2> const flat = xt::view(train.images, xt::range(0, train_images), xt::all());
    xt::xtensor<float, 4> const x = nn::as_images(flat, 1, 28, 28);
    xt::xtensor<std::uint8_t, 1> const y = xt::view(train.labels, xt::range(0, train_images));

    std::size_t const width1 = 8, width2 = 16, hidden = 64;
    auto model = nn::cnn({.width1 = width1, .width2 = width2, .hidden = hidden, .seed = 1}, ste::xnor_weight<>{},
                         ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{}, nn::bias_head);
    train::trainer t{model, train::binary_connect{}, optim::adam({.lr = 0.01f})};
    (void)t.fit(x, y, {.epochs = 1, .batch = 100, .seed = 7});
    double const trained = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    // Pixels p / 255 are the codes p of the default input map: the packed model sees the float model's input.
    deploy::packed_cnn const packed = deploy::compile(model);
    test::temp_dir dir("deploy_fashion_cnn");
    deploy::save_packed(dir / "cnn.lbpk", packed);
    deploy::packed_cnn const loaded = deploy::load_packed_cnn(dir / "cnn.lbpk");

    std::size_t const n = test.images.shape(0);
    REQUIRE(n == 10000);
    xt::xtensor<float, 4> const images = nn::as_images(test.images, 1, 28, 28);
    xt::xtensor<std::uint8_t, 4> const codes = packed.quantize(images);
    xt::xtensor<float, 2> logits = xt::xtensor<float, 2>::from_shape({n, 10});

    // The fake-quant model layer by layer, 1000 images at a time (the first feature maps of all 10000 images
    // would take 250 MB of floats), with the hidden signs of both models compared per image.
    nn::forward_context const eval{.training = false};
    xt::xtensor<float, 2> fake = xt::xtensor<float, 2>::from_shape({n, 10});
    std::vector<std::size_t> per_image(n, 0);
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
        std::size_t* const d = per_image.data() + i0;
        // One packed pass gives every sign layer; the logits are the last layer's output on the last of them,
        // which is what forward() computes (checked on the first chunk, with the model loaded from the file).
        std::vector<xt::xtensor<std::uint64_t, 2>> const bits = packed.trace(qi);
        REQUIRE(bits.size() == 5);
        deploy::packed_dense const& last = packed.dense().back();
        last.forward(kernels::bit_matrix_view{bits[4].data(), chunk, hidden, bits[4].shape(1)}, logits.data() + i0 * 10, 10);
        if (i0 == 0) {
            xt::xtensor<float, 2> const part = xt::view(logits, xt::range(0, chunk), xt::all());
            CHECK(loaded.forward(qi) == part);
            CHECK(packed.forward(xi) == part);
        }
        count_conv(a1, bits[0], d);
        count_conv(a2, bits[1], d);
        count_conv(a3, bits[2], d);
        count_conv(a4, bits[3], d);
        count_dense(a5, bits[4], d);
    }
    std::size_t differing_signs = 0, images_with_differences = 0;
    for (std::size_t const d : per_image) {
        differing_signs += d;
        images_with_differences += d != 0;
    }
    std::size_t const signs_per_image = 2 * width1 * 28 * 28 + 2 * width2 * 14 * 14 + hidden;

    // The tolerance of the logits (docs/deploy.md), as for the MLP: K = hidden terms +-Q_jk of the 8-bit last layer.
    std::vector<double> const tolerance = test::logit_tolerance(model.layer<10>(), 1.0);

    std::size_t same_class = 0, correct = 0, fake_correct = 0, outside = 0;
    double worst = 0.0, worst_ratio = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t const a = argmax_row(fake, i), b = argmax_row(logits, i);
        same_class += a == b;
        correct += b == test.labels(i);
        fake_correct += a == test.labels(i);
        if (per_image[i] != 0) continue;
        for (std::size_t j = 0; j < 10; ++j) {
            double const d = std::abs(static_cast<double>(fake(i, j)) - logits(i, j));
            worst = std::max(worst, d);
            worst_ratio = std::max(worst_ratio, d / tolerance[j]);
            outside += d > tolerance[j];
        }
    }
    double const accuracy = static_cast<double>(correct) / static_cast<double>(n);
    double const total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    MESSAGE("packed CNN accuracy " << accuracy << ", fake-quant " << static_cast<double>(fake_correct) / static_cast<double>(n)
                                   << "; argmax agreement " << same_class << "/" << n << "; differing hidden signs "
                                   << differing_signs << " of " << signs_per_image * n << " in " << images_with_differences
                                   << " images; largest logit difference " << worst << " (" << worst_ratio
                                   << " of the tolerance, which is about " << tolerance[0] << "); training " << trained
                                   << " s, total " << total << " s");
    CHECK(same_class == n);
    // A float GEMM's summation order can move a BatchNorm output that lies within rounding of 0 to the other
    // side, in a handful of images at most -- a wrong threshold or padding would show in thousands.
    CHECK(images_with_differences <= 5);
    CHECK(outside == 0);
    CHECK(accuracy > 0.5);  // one epoch on 3000 images (chance is 0.1)
}
