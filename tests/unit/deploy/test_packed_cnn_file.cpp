// SPDX-License-Identifier: MIT
// The packed CNN file: a bit-exact round trip (logits and every threshold), the kind detection, and one clear
// io_error naming the file for each problem -- missing, truncated, corrupt, a packed MLP or a training
// checkpoint where a CNN is expected (and a CNN where an MLP is), unsupported packed version, missing entry,
// shape mismatch, inconsistent geometry.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_cnn_file.hpp>
#include <lowbit/deploy/packed_file.hpp>
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
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

using namespace lowbit;
namespace ste = lowbit::ste;
using lowbit::test::contains;
using lowbit::test::problem;
using lowbit::test::read_file;
using lowbit::test::write_file;

namespace {


std::string cnn_problem(std::filesystem::path const& p) { return problem(p, [](auto const& f) { return deploy::load_packed_cnn(f); }); }

auto small_cnn()
{
    auto model = nn::cnn({.channels = 1, .size = 8, .width1 = 6, .width2 = 65, .hidden = 20, .classes = 3, .seed = 2},
                         ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                         nn::bias_head);
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    model.for_each_leaf([&](auto& l) {
        if constexpr (requires { l.running_mean(); })
            for (std::size_t j = 0; j < l.gamma().size(); ++j) {
                l.gamma()[j] = u(rng);
                l.beta()[j] = u(rng);
                l.running_mean()[j] = 0.3f * u(rng);
                l.running_var()[j] = 0.5f + 0.4f * u(rng);
            }
    });
    return model;
}

xt::xtensor<float, 4> images(std::size_t n)
{
    std::mt19937_64 rng(7);
    xt::xtensor<float, 4> x = xt::xtensor<float, 4>::from_shape({n, 1, 8, 8});
    for (float& v : x) v = static_cast<float>(rng() % 256u) / 255.0f;
    return x;
}

} // namespace

TEST_CASE("a packed CNN round-trips through its file bit for bit, and packed_kind tells it from an MLP")
{
    test::temp_dir dir("packed_cnn_file");
    auto model = small_cnn();
    deploy::packed_cnn const packed = deploy::compile(model, {.input = {.scale = 0.01f, .offset = -0.5f}});
    deploy::save_packed(dir / "cnn.lbpk", packed);
    CHECK(std::filesystem::file_size(dir / "cnn.lbpk") == deploy::packed_bytes(packed));
    io::archive const a = io::load_archive(dir / "cnn.lbpk");
    CHECK(deploy::packed_kind(a) == deploy::packed_model_kind::cnn);
    CHECK(a.meta().at("format") == "lowbit-packed-cnn");
    deploy::packed_cnn const loaded = deploy::load_packed_cnn(dir / "cnn.lbpk");
    CHECK(loaded.input().scale == packed.input().scale);
    CHECK(loaded.input().offset == packed.input().offset);
    REQUIRE(loaded.convs().size() == 4);
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK(loaded.pools()[i].kernel == packed.pools()[i].kernel);
        CHECK(loaded.pools()[i].stride == packed.pools()[i].stride);
        CHECK(loaded.convs()[i].weights().signs == packed.convs()[i].weights().signs);
        CHECK(loaded.convs()[i].weights().codes == packed.convs()[i].weights().codes);
        REQUIRE(loaded.convs()[i].thresholds().size() == packed.convs()[i].thresholds().size());
        for (std::size_t c = 0; c < packed.convs()[i].thresholds().size(); ++c) {
            CHECK(loaded.convs()[i].thresholds()[c].threshold == packed.convs()[i].thresholds()[c].threshold);
            CHECK(loaded.convs()[i].thresholds()[c].flip == packed.convs()[i].thresholds()[c].flip);
        }
    }
    CHECK(packed.convs()[0].thresholds().size() == 9);  // one per padding class of the first convolution
    xt::xtensor<float, 4> const x = images(17);
    CHECK(loaded.forward(x) == packed.forward(x));

    // An MLP file is still an MLP file, and each loader names the other.
    auto mlp = nn::mlp({.inputs = 6, .hidden = 8, .classes = 2}, ste::xnor_weight<>{}, ste::dorefa_weight<8>{},
                       ste::dorefa_weight<8>{}, ste::sign_activation{}, nn::bias_head);
    deploy::save_packed(dir / "mlp.lbpk", deploy::compile(mlp));
    CHECK(deploy::packed_kind(io::load_archive(dir / "mlp.lbpk")) == deploy::packed_model_kind::mlp);
    CHECK(io::load_archive(dir / "mlp.lbpk").meta().at("format") == "lowbit-packed-mlp");
    CHECK(contains(cnn_problem(dir / "mlp.lbpk"), "this is a packed MLP ('lowbit-packed-mlp'), not a packed CNN: load it "
                                                  "with deploy::load_packed"));
    CHECK(contains(problem(dir / "cnn.lbpk", [](auto const& f) { return deploy::load_packed(f); }),
                   "this is a packed CNN ('lowbit-packed-cnn'), not a packed MLP: load it with deploy::load_packed_cnn"));
}

TEST_CASE("load_packed_cnn names the file and the problem")
{
    test::temp_dir dir("packed_cnn_errors");
    auto model = small_cnn();
    deploy::save_packed(dir / "m.lbpk", deploy::compile(model));
    std::string const s = read_file(dir / "m.lbpk");

    CHECK(cnn_problem(dir / "missing.lbpk") == "file not found");

    write_file(dir / "cut.lbpk", s.substr(0, s.size() - 9));
    CHECK(contains(cnn_problem(dir / "cut.lbpk"), "truncated: expected " + std::to_string(s.size()) + " bytes"));

    for (std::size_t const at : {std::size_t{40}, s.size() / 2, s.size() - 5}) {
        std::string damaged = s;
        damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
        write_file(dir / "damaged.lbpk", damaged);
        CHECK(contains(cnn_problem(dir / "damaged.lbpk"), "checksum mismatch: the file is corrupt"));
    }

    train::save_checkpoint(dir / "train.lbck", model, {{"model", "cnn"}});
    CHECK(contains(cnn_problem(dir / "train.lbck"), "not a packed lowbit model: metadata 'format' is missing, expected "
                                                     "'lowbit-packed-mlp', 'lowbit-packed-cnn', 'lowbit-packed-kbit-mlp', "
                                                     "'lowbit-packed-kbit-cnn' or 'lowbit-packed-model'"));

    io::archive a = io::load_archive(dir / "m.lbpk");
    a.meta()["packed_version"] = "2";
    io::save_archive(dir / "p2.lbpk", a);
    CHECK(cnn_problem(dir / "p2.lbpk") == "unsupported packed CNN version 2, and this lowbit reads packed CNN version 1");

    a = io::load_archive(dir / "m.lbpk");
    a.meta()["conv2.bits"] = "4";  // says codes, holds signs
    io::save_archive(dir / "bits.lbpk", a);
    CHECK(cnn_problem(dir / "bits.lbpk") == "missing entry 'conv2.codes'");

    a = io::load_archive(dir / "m.lbpk");
    a.meta()["conv1.kernel"] = "5";  // the weights are 3x3 patches
    io::save_archive(dir / "kernel.lbpk", a);
    CHECK(contains(cnn_problem(dir / "kernel.lbpk"), "shape mismatch for entry 'conv1.signs'"));

    a = io::load_archive(dir / "m.lbpk");
    a.meta()["height"] = "12";  // the dense layer reads an 8x8 image's features
    io::save_archive(dir / "size.lbpk", a);
    CHECK(contains(cnn_problem(dir / "size.lbpk"), "shape mismatch for entry 'dense0.signs'"));

    a = io::load_archive(dir / "m.lbpk");
    a.meta()["conv1.pool_kernel"] = "9";
    io::save_archive(dir / "pool.lbpk", a);
    CHECK(contains(cnn_problem(dir / "pool.lbpk"), "inconsistent packed model: the pooling after convolution 1"));

    a = io::load_archive(dir / "m.lbpk");
    a.meta()["convs"] = "x";
    io::save_archive(dir / "meta.lbpk", a);
    CHECK(cnn_problem(dir / "meta.lbpk") == "metadata 'convs' is 'x', not a number up to 64");
}

TEST_CASE("sizes read from a packed CNN file are bounded before the loader allocates or loops on them (fuzz findings)")
{
    test::temp_dir dir("packed_cnn_bounds");
    auto model = small_cnn();
    deploy::save_packed(dir / "m.lbpk", deploy::compile(model));
    auto edited = [&](auto&& edit) {
        io::archive a = io::load_archive(dir / "m.lbpk");
        edit(a);
        io::save_archive(dir / "e.lbpk", a);
        return cnn_problem(dir / "e.lbpk");
    };

    // A valid file with only its image size changed made the first convolution build one padding class entry
    // per output pixel before any check: over 20 s, then a 2 GiB allocation (height 2^31 - 2, or 65536 x 65536);
    // 1.3 GB and 2.9 s for height 10^7.
    CHECK(edited([](io::archive& a) { a.meta()["height"] = "2147483646"; }) ==
          "metadata 'height' is '2147483646', not a number up to 512");
    CHECK(edited([](io::archive& a) { a.meta()["height"] = a.meta()["width"] = "65536"; }) ==
          "metadata 'height' is '65536', not a number up to 512");
    CHECK(edited([](io::archive& a) { a.meta()["width"] = "10000000"; }) ==
          "metadata 'width' is '10000000', not a number up to 512");
    // The largest size allowed gets to the check that the dense layer reads the flattened feature map.
    CHECK(contains(edited([](io::archive& a) { a.meta()["height"] = a.meta()["width"] = "512"; }),
                   "shape mismatch for entry 'dense0.signs'"));
    // A padding lets a convolution write a larger map than it reads: each one's map is bounded too.
    CHECK(edited([](io::archive& a) {
              a.meta()["height"] = a.meta()["width"] = "512";
              a.meta()["conv0.padding"] = "64";
          }) == "inconsistent packed model: convolution 0: it writes a 638x638 feature map, and a packed CNN file's "
                "convolutions write at most 512x512 each and 2^22 pixels in all");

    // A first convolution of 0 filters with thresholds of 2^40 sets of 0 (an archive of zero elements, so a
    // valid one) made the loader allocate 2^40 threshold sets before the layer refused 0 filters: std::bad_alloc.
    constexpr std::size_t sets = std::size_t{1} << 40;
    CHECK(edited([&](io::archive& a) {
              a = test::without(test::without(test::without(a, "conv0.codes"), "conv0.threshold"), "conv0.flip");
              a.add("conv0.codes", {0, 9}, std::vector<std::int8_t>{});
              a.add("conv0.threshold", {sets, 0}, std::vector<std::int32_t>{});
              a.add("conv0.flip", {sets, 0}, std::vector<std::uint64_t>{});
          }) == "inconsistent packed model: convolution 0: channels, height, width, filters, kernel and stride must be "
               "positive");
}
