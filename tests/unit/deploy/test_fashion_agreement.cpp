// SPDX-License-Identifier: MIT
// The deploy path end to end on real data: a binarized MLP (8-bit DoReFa first and last layers, XNOR hidden
// layer, sign activations, bias head) trained for one epoch on 6000 Fashion-MNIST images with BinaryConnect,
// lowered by deploy::compile, and run on the WHOLE test set (10000 images; the first 1000 in the asan preset,
// test::agreement_test_set) beside the fake-quant model's evaluation forward:
//  - every hidden sign of both layers is the sign the fake-quant model's own BatchNorm gives to its
//    pre-activation plus or minus the float summation bound (deploy::audit, code by code between the packed
//    model's steps; the thresholds are exact, and the only possible difference is the fake-quant model's own
//    float rounding of its sums putting a BatchNorm output that is within rounding of 0 on the other side,
//    docs/deploy.md -- which depends on the summation order of its GEMMs, so the check does not count such
//    flips, it explains each);
//  - where the hidden signs agree, the logits agree within the same bound, and so does the argmax unless two
//    logits are within rounding of each other;
//  - the packed file round-trips and the packed model is far better than chance.
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
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <system_error>
#include <vector>

using namespace lowbit;
namespace ste = lowbit::ste;

TEST_CASE("a trained binarized MLP and its packed model agree on the Fashion-MNIST test images" *
          doctest::skip(!test::have_fashion_mnist()))
{
    std::size_t const hidden = 128, train_images = 6000;
    auto const train = data::load_fashion_mnist(data::split::train);
    auto const test = test::agreement_test_set();
    xt::xtensor<float, 2> const x = xt::view(train.images, xt::range(0, train_images), xt::all());
    xt::xtensor<std::uint8_t, 1> const y = xt::view(train.labels, xt::range(0, train_images));

    auto model = nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = nn::init::uniform_unit, .seed = 1},
                         ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                         nn::bias_head);
    train::trainer t{model, train::binary_connect{}, optim::adam({.lr = 0.01f})};
    (void)t.fit(x, y, {.epochs = 1, .batch = 100, .seed = 7});

    // Pixels p / 255 are the codes p of the default input map: the packed model sees the float model's input.
    deploy::compile_options const options{};
    deploy::packed_model const packed = deploy::compile(model, options);
    test::temp_dir dir("deploy_fashion");
    deploy::save_packed(dir / "bnn.lbpk", packed);
    deploy::packed_model const loaded = deploy::load_packed_model(dir / "bnn.lbpk");

    std::size_t const n = test.images.shape(0);
    REQUIRE(n > 0);
    CHECK(loaded.forward(test.images) == packed.forward(test.images));

    // The fake-quant model layer by layer (dense, then BN + sign), against the packed bits.
    deploy::rounding_audit const audit = deploy::audit(model, packed, test.images, test.labels, options);
    std::size_t const correct = audit.packed_correct, fake_correct = audit.fake_correct;
    double const accuracy = static_cast<double>(correct) / static_cast<double>(n);
    MESSAGE("packed accuracy " << accuracy << ", fake-quant " << static_cast<double>(fake_correct) / static_cast<double>(n)
                               << "; argmax disagreements " << audit.argmax_disagreements << " of " << n
                               << "; hidden signs differing " << audit.differing << " of " << audit.values
                               << " compared (" << 2 * hidden * n << " in all) in " << audit.images_differing()
                               << " images, unexplained " << audit.unexplained << ", within rounding of 0 "
                               << audit.ambiguous << "; largest logit difference " << audit.max_logit_diff << " ("
                               << audit.max_logit_ratio << " of the bound)");
    CHECK(audit.unexplained == 0);  // every packed sign is the fake-quant model's up to its own rounding
    CHECK(audit.argmax_disagreements_where_codes_agree == 0);
    CHECK(audit.logits_outside == 0);
    CHECK(audit.values + audit.skipped == 2 * hidden * n);
    CHECK(audit.ambiguous * 20 < audit.values);  // the bound is narrow (0.15-1.6 % seen): the check has teeth
    CHECK(accuracy > 0.6);  // one epoch on 6000 images: about 0.7 (chance is 0.1)
}
