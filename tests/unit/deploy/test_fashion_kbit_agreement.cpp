// SPDX-License-Identifier: MIT
// k-bit activations end to end on real data: MLPs with 4-bit and 2-bit PACT activations (8-bit DoReFa first
// and last layers, 2-bit DoReFa or XNOR hidden layer, bias head) trained for one epoch on 6000 Fashion-MNIST
// images with BinaryConnect (PACT's alpha learned), lowered by deploy::compile, and run on the WHOLE test set
// (10000 images; the first 1000 in the asan preset, test::agreement_test_set) beside the fake-quant model's
// evaluation forward:
//  - every hidden code of both layers is the code the fake-quant model's own BatchNorm + PACT give to its
//    pre-activation plus or minus the float summation bound (deploy::audit, code by code between the packed
//    model's steps; the thresholds are exact, and only the fake-quant model's own float sums could put a
//    BatchNorm output within rounding of a PACT step on the other side, docs/deploy.md, depending on their
//    summation order);
//  - where the hidden codes agree, the logits agree within the same bound, and so does the argmax unless two
//    logits are within rounding of each other;
//  - the codes strictly between 0 and the top code occur (the levels are exercised), and the packed file
//    round-trips.
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

namespace {

template <class Hidden, int Bits>
struct recipe {
    using hidden = Hidden;
    static constexpr int bits = Bits;
};

} // namespace

TEST_CASE_TEMPLATE("trained PACT MLPs and their packed models agree on the Fashion-MNIST test images" *
                       doctest::skip(!test::have_fashion_mnist()),
                   R, recipe<ste::dorefa_weight<2>, 4>, recipe<ste::xnor_weight<>, 2>)
{
    constexpr int bits = R::bits;
    std::size_t const hidden = 128, train_images = 6000;
    auto const train = data::load_fashion_mnist(data::split::train);
    auto const test = test::agreement_test_set();
    xt::xtensor<float, 2> const x = xt::view(train.images, xt::range(0, train_images), xt::all());
    xt::xtensor<std::uint8_t, 1> const y = xt::view(train.labels, xt::range(0, train_images));

    auto model = nn::mlp({.inputs = 784, .hidden = hidden, .classes = 10, .init = nn::init::uniform_unit, .seed = 1},
                         typename R::hidden{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{},
                         ste::pact<bits>{{.alpha = 3.0f}}, nn::bias_head);
    train::trainer t{model, train::binary_connect{}, optim::adam({.lr = 0.01f})};
    (void)t.fit(x, y, {.epochs = 1, .batch = 100, .seed = 7});

    // Pixels p / 255 are the codes p of the default input map: the packed model sees the float model's input.
    deploy::compile_options const options{};
    deploy::packed_model const packed = deploy::compile(model, options);
    std::size_t const n = test.images.shape(0);
    REQUIRE(n > 0);
    test::temp_dir dir("deploy_kbit_fashion");
    deploy::save_packed(dir / "pact.lbpk", packed);
    CHECK(deploy::load_packed_model(dir / "pact.lbpk").forward(test.images) == packed.forward(test.images));

    // The fake-quant model layer by layer (dense, then BN + ReLU + PACT), against the packed codes.
    deploy::rounding_audit const audit = deploy::audit(model, packed, test.images, test.labels, options);
    long const top = (1 << bits) - 1;
    std::size_t inner = 0;
    for (std::size_t steps : {std::size_t{2}, std::size_t{3}}) {  // the two hidden layers' codes
        deploy::activations const codes = packed.run(test.images, steps);
        REQUIRE(codes.kind == deploy::encoding::codes);
        inner += static_cast<std::size_t>(
            std::ranges::count_if(codes.codes, [top](std::uint8_t v) { return v != 0 && v != top; }));
    }
    double const accuracy = static_cast<double>(audit.packed_correct) / static_cast<double>(n);
    MESSAGE(bits << "-bit PACT: packed accuracy " << accuracy << ", fake-quant "
                 << static_cast<double>(audit.fake_correct) / static_cast<double>(n) << "; argmax disagreements "
                 << audit.argmax_disagreements << " of " << n << "; hidden codes differing " << audit.differing << " of "
                 << audit.values << " compared (" << 2 * hidden * n << " in all) in " << audit.images_differing()
                 << " images, unexplained " << audit.unexplained << ", within rounding of a step " << audit.ambiguous
                 << " (" << inner << " strictly between 0 and " << top
                 << "); largest logit difference " << audit.max_logit_diff << " (" << audit.max_logit_ratio
                 << " of the bound)");
    CHECK(audit.unexplained == 0);  // every packed code is the fake-quant model's up to its own rounding
    CHECK(audit.argmax_disagreements_where_codes_agree == 0);
    CHECK(audit.logits_outside == 0);
    CHECK(audit.values + audit.skipped == 2 * hidden * n);
    CHECK(audit.ambiguous * 20 < audit.values);  // the bound is narrow (0.15-1.6 % seen): the check has teeth
    CHECK(inner > hidden * n / 10);  // the codes between 0 and n occur: the levels are exercised
    CHECK(accuracy > 0.6);
}
