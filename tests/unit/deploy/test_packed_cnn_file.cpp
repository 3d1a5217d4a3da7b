// SPDX-License-Identifier: MIT
// The packed file of CNNs (deploy::save_packed / load_packed_model of the deploy::packed_model that compile makes
// of nn::cnn; format lowbit-packed-model):
//  - a binarized and a 4-bit PACT CNN round-trip bit for bit: every convolution's and dense layer's weights and
//    threshold sets (one per padding class in the first convolution), the logits, and the file's bytes when the
//    loaded model is saved again;
//  - one clear io_error naming the file for each problem: missing, truncated, corrupt, a training checkpoint,
//    unsupported version, missing entry, shape mismatch, steps that do not chain, metadata that is no number,
//    and in a PACT CNN's convolutions a code width that does not match the thresholds and a negate flag other
//    than 0 or 1;
//  - every size read from the file (image sides, output pixels, threshold sets) bounded before the loader
//    allocates or loops on it (the fuzzer's findings on the CNN files).
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include "../../support/file_problem.hpp"
#include "../../support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

// The unity build compiles this file with test_packed_cnn.cpp: its helpers and test cases live in a namespace of
// their own, not an anonymous one shared with the other file.
namespace packed_cnn_file_test {

using namespace lowbit;
namespace ste = lowbit::ste;
using lowbit::test::contains;
using lowbit::test::problem;

std::string model_problem(std::filesystem::path const& p)
{
    return problem(p, [](auto const& f) { return deploy::load_packed_model(f); });
}

/// BatchNorms with statistics and affine parameters away from the trivial ones (gamma of both signs).
template <class Model>
void shake_batch_norms(Model& model)
{
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    model.for_each_leaf([&](auto& l) {
        if constexpr (requires { l.running_mean(); })
            for (std::size_t j = 0; j < l.gamma().size(); ++j) {
                l.gamma()[j] = u(rng);
                l.beta()[j] = 0.5f + 0.5f * u(rng);  // inside PACT's range too
                l.running_mean()[j] = 0.3f * u(rng);
                l.running_var()[j] = 0.5f + 0.4f * u(rng);
            }
    });
}

/// The input map of both models: offset -0.5, so code 0 is not 0.0 and the first convolution has a set of
/// thresholds per padding class.
deploy::compile_options const options{.input = {.scale = 0.01f, .offset = -0.5f}, .height = 8, .width = 8};

/// nn::cnn's binarized CNN on 8x8 images, more than 64 channels in the second block.
deploy::packed_model small_cnn()
{
    auto model = nn::cnn({.channels = 1, .size = 8, .width1 = 6, .width2 = 65, .hidden = 20, .classes = 3, .seed = 2},
                         ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                         nn::bias_head);
    shake_batch_norms(model);
    return deploy::compile(model, options);
}

/// nn::cnn with 4-bit PACT activations, all three weight kinds (2-bit DoReFa, 8-bit DoReFa first, XNOR last).
deploy::packed_model small_kbit_cnn()
{
    auto model = nn::cnn({.channels = 1, .size = 8, .width1 = 6, .width2 = 65, .hidden = 20, .classes = 3, .seed = 2},
                         ste::dorefa_weight<2>{}, ste::dorefa_weight<8>{}, ste::xnor_weight<>{},
                         ste::pact<4>{{.alpha = 2.0f}}, nn::bias_head);
    shake_batch_norms(model);
    return deploy::compile(model, options);
}

/// Images whose pixels are every input code: scale q + offset for random q.
xt::xtensor<float, 4> images(std::size_t n)
{
    std::mt19937_64 rng(7);
    xt::xtensor<float, 4> x = xt::xtensor<float, 4>::from_shape({n, 1, 8, 8});
    for (float& v : x) v = options.input.scale * static_cast<float>(rng() % 256u) + options.input.offset;
    return x;
}

void check_same_weights(deploy::packed_weights const& a, deploy::packed_weights const& b)
{
    CHECK(a.in == b.in);
    CHECK(a.out == b.out);
    CHECK(a.bits == b.bits);
    CHECK(a.odd == b.odd);
    CHECK(a.signs == b.signs);
    CHECK(a.codes == b.codes);
    CHECK(a.scale == b.scale);
}

void check_same_sets(std::span<deploy::sign_thresholds const> a, std::span<deploy::sign_thresholds const> b)
{
    REQUIRE(a.size() == b.size());
    for (std::size_t c = 0; c < a.size(); ++c) {
        CHECK(a[c].threshold == b[c].threshold);
        CHECK(a[c].flip == b[c].flip);
    }
}

void check_same_sets(std::span<deploy::level_thresholds const> a, std::span<deploy::level_thresholds const> b)
{
    REQUIRE(a.size() == b.size());
    for (std::size_t c = 0; c < a.size(); ++c) {
        CHECK(a[c].levels == b[c].levels);
        CHECK(a[c].threshold == b[c].threshold);
        CHECK(a[c].negate == b[c].negate);
    }
}

void check_same_sets(std::span<deploy::affine_output const> a, std::span<deploy::affine_output const> b)
{
    REQUIRE(a.size() == b.size());
    for (std::size_t c = 0; c < a.size(); ++c) {
        CHECK(a[c].a == b[c].a);
        CHECK(a[c].offset == b[c].offset);
        CHECK(a[c].step == b[c].step);
        CHECK(a[c].bias == b[c].bias);
    }
}

/// @p packed through its file: the file's size, the loaded model's steps (each integer layer's weights and every
/// set of its output stage), the logits, and the bytes of the loaded model saved again.
void check_round_trip(deploy::packed_model const& packed, test::temp_dir const& dir)
{
    deploy::save_packed(dir / "m.lbpk", packed);
    CHECK(std::filesystem::file_size(dir / "m.lbpk") == deploy::packed_bytes(packed));
    CHECK(io::load_archive(dir / "m.lbpk").meta().at("format") == "lowbit-packed-model");
    deploy::packed_model const loaded = deploy::load_packed_model(dir / "m.lbpk");
    CHECK(loaded.inputs() == packed.inputs());
    CHECK(loaded.classes() == packed.classes());
    REQUIRE(loaded.steps().size() == packed.steps().size());
    std::size_t integer = 0;
    for (std::size_t i = 0; i < packed.steps().size(); ++i) {
        CAPTURE(i);
        deploy::packed_step const& p = packed.steps()[i];
        deploy::packed_step const& l = loaded.steps()[i];
        REQUIRE(l.op.index() == p.op.index());
        if (auto const* pc = std::get_if<deploy::integer_conv_step>(&p.op)) {
            auto const& lc = std::get<deploy::integer_conv_step>(l.op);
            kernels::binary_conv2d_shape const &a = pc->shape(), &b = lc.shape();
            CHECK((a.channels == b.channels && a.height == b.height && a.width == b.width && a.filters == b.filters &&
                   a.kernel == b.kernel && a.stride == b.stride && a.padding == b.padding));
            CHECK(lc.input() == pc->input());
            check_same_weights(lc.weights(), pc->weights());
            REQUIRE(lc.stage().index() == pc->stage().index());
            std::visit(
                [&]<class O>(O const& o) { check_same_sets(std::span(std::get<O>(lc.stage())), std::span(o)); },
                pc->stage());
            ++integer;
        } else if (auto const* pd = std::get_if<deploy::integer_dense_step>(&p.op)) {
            auto const& ld = std::get<deploy::integer_dense_step>(l.op);
            CHECK(ld.input() == pd->input());
            check_same_weights(ld.weights(), pd->weights());
            REQUIRE(ld.stage().index() == pd->stage().index());
            std::visit(
                [&]<class O>(O const& o) {
                    check_same_sets(std::span(&std::get<O>(ld.stage()), 1), std::span(&o, 1));
                },
                pd->stage());
            ++integer;
        } else if (auto const* pp = std::get_if<deploy::max_pool_step>(&p.op)) {
            CHECK(std::get<deploy::max_pool_step>(l.op).window.kernel == pp->window.kernel);
            CHECK(std::get<deploy::max_pool_step>(l.op).window.stride == pp->window.stride);
        }
    }
    CHECK(integer == 6);  // four convolutions, two dense layers
    xt::xtensor<float, 4> const x = images(17);
    CHECK(loaded.forward(x) == packed.forward(x));
    deploy::save_packed(dir / "again.lbpk", loaded);
    CHECK(test::read_file(dir / "again.lbpk") == test::read_file(dir / "m.lbpk"));
}

/// @p edit applied to the archive of the file @p from, saved (with a valid checksum) to e.lbpk: the loader's problem.
template <class Edit>
std::string edited(test::temp_dir const& dir, std::string const& from, Edit&& edit)
{
    io::archive a = io::load_archive(dir / from);
    edit(a);
    io::save_archive(dir / "e.lbpk", a);
    return model_problem(dir / "e.lbpk");
}


TEST_CASE("a lowered binarized CNN and a lowered PACT CNN round-trip through the packed model file bit for bit")
{
    test::temp_dir dir("packed_cnn_file");
    SUBCASE("binarized")
    {
        deploy::packed_model const packed = small_cnn();
        check_round_trip(packed, dir);
        io::archive const a = io::load_archive(dir / "m.lbpk");
        CHECK(a.meta().at("step2.kind") == "integer_conv");
        CHECK(a.meta().at("step2.output") == "signs");
        CHECK(a.meta().at("step2.sets") == "9");  // one per padding class of the first convolution
        CHECK(a.meta().at("step3.sets") == "1");
    }
    SUBCASE("4-bit PACT")
    {
        deploy::packed_model const packed = small_kbit_cnn();
        check_round_trip(packed, dir);
        io::archive const a = io::load_archive(dir / "m.lbpk");
        CHECK(a.meta().at("step2.output") == "codes");
        CHECK(a.meta().at("step2.act_bits") == "4");
        CHECK(a.meta().at("step2.sets") == "9");
        CHECK(a.meta().at("step3.sets") == "1");
    }
}

TEST_CASE("load_packed_model names the CNN file and the problem")
{
    test::temp_dir dir("packed_cnn_errors");
    deploy::save_packed(dir / "m.lbpk", small_cnn());
    std::string const s = test::read_file(dir / "m.lbpk");

    CHECK(model_problem(dir / "missing.lbpk") == "file not found");

    test::write_file(dir / "cut.lbpk", s.substr(0, s.size() - 9));
    CHECK(contains(model_problem(dir / "cut.lbpk"), "truncated: expected " + std::to_string(s.size()) + " bytes"));

    for (std::size_t const at : {std::size_t{40}, s.size() / 2, s.size() - 5}) {
        std::string damaged = s;
        damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
        test::write_file(dir / "damaged.lbpk", damaged);
        CHECK(contains(model_problem(dir / "damaged.lbpk"), "checksum mismatch: the file is corrupt"));
    }

    auto model = nn::cnn({.channels = 1, .size = 8, .width1 = 6, .width2 = 65, .hidden = 20, .classes = 3, .seed = 2},
                         ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                         nn::bias_head);
    train::save_checkpoint(dir / "train.lbck", model, {{"model", "cnn"}});
    CHECK(contains(model_problem(dir / "train.lbck"), "not a packed lowbit model: metadata 'format' is missing"));

    // Edited archives, saved with a valid checksum: the loader checks the content, not only the container. The steps:
    // 0 nhwc, 1 input codes, 2 and 3 convolutions, 4 pooling, 5 and 6 convolutions, 7 pooling, 8 flatten, 9 and 10
    // dense.
    CHECK(edited(dir, "m.lbpk", [](io::archive& a) { a.meta()["packed_version"] = "2"; }) ==
          "unsupported packed model version 2, and this lowbit reads packed version 1");
    CHECK(contains(edited(dir, "m.lbpk", [](io::archive& a) { a = test::without(a, "step3.flip"); }),
                   "missing entry 'step3.flip'"));
    // The weights are 3x3 patches of 6 channels (one word of sign bits per filter), not 5x5 ones.
    CHECK(contains(edited(dir, "m.lbpk", [](io::archive& a) { a.meta()["step3.kernel"] = "5"; }),
                   "shape mismatch for entry 'step3.signs'"));
    CHECK(contains(edited(dir, "m.lbpk", [](io::archive& a) { a.meta()["step0.height"] = "12"; }),
                   "inconsistent packed model: lowbit::deploy::packed_model: the steps do not chain: an NHWC step of "
                   "1x12x8 images reads 64 flat features"));
    CHECK(contains(edited(dir, "m.lbpk", [](io::archive& a) { a.meta()["step4.kernel"] = "9"; }),
                   "the 8x8 input is smaller than the 9x9 window"));
    CHECK(contains(edited(dir, "m.lbpk", [](io::archive& a) { a.meta()["step3.channels"] = "7"; }),
                   "the steps do not chain: a convolution of 7x8x8 reads 6x8x8"));
    CHECK(edited(dir, "m.lbpk", [](io::archive& a) { a.meta()["classes"] = "x"; }) ==
          "metadata 'classes' is 'x', not a number up to 1073741824");
}

TEST_CASE("load_packed_model names the problem of a PACT CNN's convolution steps")
{
    test::temp_dir dir("packed_kbit_cnn_errors");
    deploy::save_packed(dir / "m.lbpk", small_kbit_cnn());
    auto const edit = [&](auto&& e) { return edited(dir, "m.lbpk", e); };
    // Step 2 is the first convolution (9 sets of thresholds, one per padding class), step 3 the second (one set):
    // 6 filters of 3x3 patches of 6 channels with 2-bit DoReFa codes.
    CHECK(contains(edit([](io::archive& a) { a.meta()["step3.act_bits"] = "0"; }), "act_bits' is 0"));
    // 2-bit codes have 3 thresholds per channel; the entry holds 15 per channel for each of the 9 sets.
    CHECK(contains(edit([](io::archive& a) { a.meta()["step2.act_bits"] = "2"; }),
                   "shape mismatch for entry 'step2.threshold'"));
    CHECK(contains(edit([](io::archive& a) { a.meta()["step3.kernel"] = "5"; }),
                   "shape mismatch for entry 'step3.codes': the file has [6, 54], expected [6, 150]"));
    CHECK(contains(edit([](io::archive& a) {
                       a = test::without(a, "step3.negate");
                       std::vector<std::uint8_t> flags(6, 0);
                       flags[0] = 2;
                       a.add("step3.negate", {1, 6}, flags);
                   }),
                   "has negate flag 2, not 0 or 1"));
    CHECK(contains(edit([](io::archive& a) { a.meta()["classes"] = "4"; }),
                   "inconsistent packed model: lowbit::deploy::packed_model: the last step writes 3 floats, not 4 floats"));
}

TEST_CASE("sizes read from a packed CNN file are bounded before the loader allocates or loops on them (fuzz findings)")
{
    test::temp_dir dir("packed_cnn_bounds");
    deploy::save_packed(dir / "m.lbpk", small_cnn());
    auto const edit = [&](auto&& e) { return edited(dir, "m.lbpk", e); };

    // A valid file with only its image size changed made the first convolution build one padding class entry
    // per output pixel before any check: over 20 s, then a 2 GiB allocation (height 2^31 - 2, or 65536 x 65536);
    // 1.3 GB and 2.9 s for height 10^7.
    CHECK(edit([](io::archive& a) { a.meta()["step0.height"] = "2147483646"; }) ==
          "metadata 'step0.height' is '2147483646', not a number up to 512");
    CHECK(edit([](io::archive& a) { a.meta()["step2.height"] = a.meta()["step2.width"] = "65536"; }) ==
          "metadata 'step2.height' is '65536', not a number up to 512");
    CHECK(edit([](io::archive& a) { a.meta()["step2.width"] = "10000000"; }) ==
          "metadata 'step2.width' is '10000000', not a number up to 512");
    // The largest side allowed builds its convolution and gets to the check that the steps chain.
    CHECK(contains(edit([](io::archive& a) { a.meta()["step2.height"] = a.meta()["step2.width"] = "512"; }),
                   "the steps do not chain: a convolution of 1x512x512 reads 1x8x8"));

    // 2^40 threshold sets (of an archive of zero elements: 0 filters) made the loader allocate them before the
    // layer refused 0 filters (std::bad_alloc): the sets are a bounded number now, and 0 filters are refused.
    CHECK(edit([](io::archive& a) { a.meta()["step2.sets"] = "1099511627776"; }) ==
          "metadata 'step2.sets' is '1099511627776', not a number up to 64");
    CHECK(contains(edit([](io::archive& a) {
                       a = test::without(test::without(test::without(a, "step2.codes"), "step2.threshold"),
                                         "step2.flip");
                       a.meta()["step2.filters"] = "0";
                       a.add("step2.codes", {0, 9}, std::vector<std::int8_t>{});
                       a.add("step2.threshold", {9, 0}, std::vector<std::int32_t>{});
                       a.add("step2.flip", {9, 0}, std::vector<std::uint64_t>{});
                   }),
                   "channels, height, width, filters, kernel and stride must be positive"));

    // A padding lets a convolution write a larger map than it reads, and a model may have many convolutions: the
    // output pixels of all of them together are bounded (2^22, sixteen maps of 512x512). Seventeen convolutions of
    // one filter on 4x4 images, each edited to 512x512: the first sixteen load, the seventeenth is refused.
    using deploy::packed_step;
    kernels::binary_conv2d_shape const g{.channels = 1, .height = 4, .width = 4, .filters = 1, .kernel = 3, .padding = 1};
    std::vector<packed_step> steps{packed_step{deploy::nhwc_step{1, 4, 4}}, packed_step{deploy::input_codes_step{}},
                                   packed_step{deploy::integer_conv_step(
                                       deploy::layer_input::codes, g,
                                       deploy::packed_weights{.in = 9, .out = 1, .bits = 8,
                                                              .codes = std::vector<std::int8_t>(9, 1)},
                                       std::vector<deploy::sign_thresholds>{{{0}, {0}}})}};
    for (int i = 0; i < 16; ++i)
        steps.push_back(packed_step{deploy::integer_conv_step(
            deploy::layer_input::signs, g, deploy::packed_weights{.in = 9, .out = 1, .bits = 1, .signs = {0}},
            std::vector<deploy::sign_thresholds>{{{0}, {0}}})});
    steps.push_back(packed_step{deploy::flatten_step{}});
    steps.push_back(packed_step{deploy::integer_dense_step(
        deploy::layer_input::signs,
        deploy::packed_weights{.in = 16, .out = 2, .bits = 1, .signs = {0, 0}},
        deploy::affine_output{.a = 1.0, .offset = {0.0, 0.0}, .step = {1.0, 1.0}, .bias = {0.0f, 0.0f}})});
    deploy::save_packed(dir / "many.lbpk", deploy::packed_model(16, 2, std::move(steps)));
    CHECK(deploy::load_packed_model(dir / "many.lbpk").steps().size() == 21);
    CHECK(edited(dir, "many.lbpk", [](io::archive& a) {
              for (int i = 2; i < 19; ++i) {
                  std::string const p = "step" + std::to_string(i) + ".";
                  a.meta()[p + "height"] = a.meta()[p + "width"] = "512";
              }
          }) == "'step18.' writes a 512x512 feature map, over the file's limit of 4194304 output pixels in all");
}

} // namespace packed_cnn_file_test
