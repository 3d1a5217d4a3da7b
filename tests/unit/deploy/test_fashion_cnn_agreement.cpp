// SPDX-License-Identifier: MIT
// The CNN deploy path end to end on real data: nn::cnn's binarized CNN (8-bit DoReFa first convolution and
// last layer, XNOR everywhere else, sign activations, bias head; widths 8 / 16 / 64, half nn::cnn's defaults,
// so that the float model's evaluation of all 10000 images stays within CI's time in Debug and ASan builds --
// lowbit-infer's ctest runs the default widths) trained for one epoch on 3000 Fashion-MNIST images with
// BinaryConnect, lowered by deploy::compile into a deploy::packed_model, and run on the WHOLE test set (10000
// images; the first 1000 in the asan preset, test::agreement_test_set) beside the fake-quant model's evaluation
// forward (deploy::audit, the general path's audit: a check that does not depend on the summation order of the
// fake-quant model's GEMMs):
//  - every hidden sign of the five sign layers (four convolutions, the hidden dense layer) is the sign the
//    fake-quant model's own BatchNorm gives to its pre-activation plus or minus the float summation bound (the
//    padded taps are exact: the float model pads with 0, the packed one too);
//  - where every sign agrees, the logits agree within the same bound and so does the argmax, unless two logits
//    are within rounding of each other;
//  - the packed file round-trips and the packed model is better than chance.
// Skipped when Debian's dataset-fashion-mnist is not installed.
#include <lowbit/data/fashion_mnist.hpp>
#include <lowbit/deploy/audit.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
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
#include <cstddef>
#include <cstdint>

using namespace lowbit;
namespace ste = lowbit::ste;

TEST_CASE("a trained binarized CNN and its packed model agree on the Fashion-MNIST test images" *
          doctest::skip(!test::have_fashion_mnist()))
{
    auto const start = std::chrono::steady_clock::now();
    std::size_t const train_images = 3000;
    auto const train = data::load_fashion_mnist(data::split::train);
    auto const test = test::agreement_test_set();
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
    deploy::compile_options const options{.height = 28, .width = 28};
    deploy::packed_model const packed = deploy::compile(model, options);
    test::temp_dir dir("deploy_fashion_cnn");
    deploy::save_packed(dir / "cnn.lbpk", packed);
    deploy::packed_model const loaded = deploy::load_packed_model(dir / "cnn.lbpk");

    std::size_t const n = test.images.shape(0);
    REQUIRE(n > 0);
    deploy::rounding_audit const audit = deploy::audit(model, packed, test.images, test.labels, options);
    std::size_t const signs_per_image = 2 * width1 * 28 * 28 + 2 * width2 * 14 * 14 + hidden;

    // The file holds the same model (the first 1000 images).
    xt::xtensor<float, 2> const x0 = xt::view(test.images, xt::range(0, std::min<std::size_t>(n, 1000)), xt::all());
    CHECK(loaded.forward(x0) == packed.forward(x0));
    double const accuracy = static_cast<double>(audit.packed_correct) / static_cast<double>(n);
    double const total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    MESSAGE("packed CNN accuracy " << accuracy << ", fake-quant " << static_cast<double>(audit.fake_correct) / static_cast<double>(n)
                                   << "; argmax disagreements " << audit.argmax_disagreements << " of " << n
                                   << "; hidden signs compared " << audit.values << " of " << signs_per_image * n
                                   << ", differing " << audit.differing << " in " << audit.images_differing()
                                   << " images, unexplained " << audit.unexplained << ", within rounding of 0 "
                                   << audit.ambiguous << "; largest logit difference " << audit.max_logit_diff << " ("
                                   << audit.max_logit_ratio << " of the bound); training " << trained << " s, total "
                                   << total << " s");
    CHECK(audit.unexplained == 0);  // every packed sign is the fake-quant model's up to its own rounding
    CHECK(audit.argmax_disagreements_where_codes_agree == 0);
    CHECK(audit.logits_outside == 0);
    CHECK(audit.values + audit.skipped == signs_per_image * n);
    CHECK(audit.ambiguous * 20 < audit.values);  // the bound is narrow (0.15-1.6 % seen): the check has teeth
    CHECK(accuracy > 0.5);  // one epoch on 3000 images (chance is 0.1)
}
