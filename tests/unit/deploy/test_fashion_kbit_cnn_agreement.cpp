// SPDX-License-Identifier: MIT
// The k-bit CNN deploy path end to end on real data: nn::cnn with 4-bit PACT activations (8-bit DoReFa first
// convolution and last layer, 2-bit DoReFa everywhere else, bias head; widths 8 / 16 / 64, half nn::cnn's
// defaults, so that the float model's evaluation of all 10000 images stays within CI's time in Debug and ASan
// builds) trained for one epoch on 3000 Fashion-MNIST images with BinaryConnect (PACT's alphas learned),
// lowered by deploy::compile into a deploy::packed_model with lowbit-train's input standardisation folded into
// the input map, and run on the WHOLE test set (10000 images; the first 1000 in the asan preset,
// test::agreement_test_set) beside the fake-quant model's evaluation forward (deploy::audit, the general path's
// audit: a check that does not depend on the summation order of the fake-quant model's GEMMs, that is on the
// OpenBLAS kernel, the thread count or -march):
//  - the input map gives back the pixels: the packed model reads the file's bytes;
//  - every code of the five code layers (four convolutions, the hidden dense layer) lies within the codes the
//    fake-quant model's own BatchNorm + PACT give to its pre-activation plus or minus the float summation bound
//    (the padded taps are exact, per padding class in the first convolution);
//  - where every code agrees, the logits agree within the same bound and so does the argmax, unless two logits
//    are within rounding of each other;
//  - the packed file round-trips, codes strictly between 0 and 15 occur, and the packed model is better than chance.
// Skipped when Debian's dataset-fashion-mnist is not installed.
#include <lowbit/data/fashion_mnist.hpp>
#include <lowbit/deploy/audit.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/deploy/packed_step.hpp>
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
#include <type_traits>
#include <variant>

using namespace lowbit;
namespace ste = lowbit::ste;

TEST_CASE("a trained 4-bit PACT CNN and its packed model agree on the Fashion-MNIST test images" *
          doctest::skip(!test::have_fashion_mnist()))
{
    constexpr int bits = 4;
    auto const start = std::chrono::steady_clock::now();
    std::size_t const train_images = 3000;
    auto const train = data::load_fashion_mnist(data::split::train);
    auto const test = test::agreement_test_set();
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

    deploy::compile_options const options{.input = map, .height = 28, .width = 28};
    deploy::packed_model const packed = deploy::compile(model, options);
    test::temp_dir dir("deploy_fashion_kbit_cnn");
    deploy::save_packed(dir / "cnn.lbpk", packed);
    deploy::packed_model const loaded = deploy::load_packed_model(dir / "cnn.lbpk");

    std::size_t const n = test.images.shape(0);
    REQUIRE(n > 0);
    xt::xtensor<float, 2> const images = (test.images - mean) / sd;
    // The map gives back the pixels: the packed model reads the file's bytes (the codes after the NHWC and
    // input-map steps; one channel, so NHWC is the images' order).
    REQUIRE(packed.steps().size() > 2);
    REQUIRE(std::holds_alternative<deploy::input_codes_step>(packed.steps()[1].op));
    deploy::activations const codes = packed.run(images, 2);
    REQUIRE(codes.codes.size() == test.images.size());
    std::size_t off_pixels = 0;
    for (std::size_t i = 0; i < codes.codes.size(); ++i)
        off_pixels += codes.codes[i] != static_cast<std::uint8_t>(std::lround(test.images.data()[i] * 255.0f));
    CHECK(off_pixels == 0);

    deploy::rounding_audit const audit = deploy::audit(model, packed, images, test.labels, options);
    std::size_t const codes_per_image = 2 * width1 * 28 * 28 + 2 * width2 * 14 * 14 + hidden;

    // The file holds the same model (the first 1000 images).
    xt::xtensor<float, 2> const x0 = xt::view(images, xt::range(0, std::min<std::size_t>(n, 1000)), xt::all());
    CHECK(loaded.forward(x0) == packed.forward(x0));
    // Codes strictly between 0 and 15 in the first 1000 images, after every integer step that writes codes: the
    // levels are exercised. One pass over the steps, reading the activations after each.
    std::size_t inner = 0;
    deploy::activations a = packed.run(x0, 0);
    for (std::size_t i = 0; i < packed.steps().size(); ++i) {
        packed.advance(a, i, i + 1);
        bool const writes_codes = std::visit(
            []<class S>(S const& s) {
                if constexpr (std::is_same_v<S, deploy::integer_conv_step> ||
                              std::is_same_v<S, deploy::integer_dense_step>)
                    return s.writes() == deploy::encoding::codes;
                else
                    return false;
            },
            packed.steps()[i].op);
        if (writes_codes)
            inner += static_cast<std::size_t>(
                std::ranges::count_if(a.codes, [](std::uint8_t v) { return v != 0 && v != 15; }));
    }
    double const accuracy = static_cast<double>(audit.packed_correct) / static_cast<double>(n);
    double const total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    MESSAGE("4-bit PACT CNN: packed accuracy " << accuracy << ", fake-quant "
                                               << static_cast<double>(audit.fake_correct) / static_cast<double>(n)
                                               << "; argmax disagreements " << audit.argmax_disagreements << " of " << n
                                               << "; codes compared " << audit.values << " of " << codes_per_image * n
                                               << ", differing " << audit.differing << " in "
                                               << audit.images_differing() << " images, unexplained "
                                               << audit.unexplained << ", within rounding of a step " << audit.ambiguous
                                               << " (" << inner << " of the first 1000 images' codes strictly between 0 and 15); largest logit "
                                               << "difference " << audit.max_logit_diff << " (" << audit.max_logit_ratio
                                               << " of the bound); training " << trained << " s, total " << total << " s");
    CHECK(audit.unexplained == 0);  // every packed code is the fake-quant model's up to its own rounding
    CHECK(audit.argmax_disagreements_where_codes_agree == 0);
    CHECK(audit.logits_outside == 0);
    CHECK(audit.values + audit.skipped == codes_per_image * n);
    // The bound is narrow, so the check has teeth: a code within rounding of a step is rare (0.15-1.6 % seen in
    // the four real-data tests; a wrong threshold would be outside the interval by whole steps).
    CHECK(audit.ambiguous * 20 < audit.values);
    CHECK(inner > codes_per_image * std::min<std::size_t>(n, 1000) / 20);  // codes between 0 and 15 occur: the levels are exercised
    CHECK(accuracy > 0.5);  // one epoch on 3000 images (chance is 0.1)
}
