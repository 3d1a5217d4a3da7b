// SPDX-License-Identifier: MIT
// The packed k-bit (PACT) MLP file: a bit-exact round trip of compiled random PACT MLPs (several weight mixes
// and activation bit widths: identical logits, hidden codes and stored state), packed_kind, and one clear
// io_error naming the file for each problem -- missing, truncated, corrupt, a packed MLP, a packed CNN or a
// training checkpoint where a k-bit MLP is expected (and a k-bit MLP where the others are), unsupported
// packed version, missing entry or metadata, shapes or values that contradict the metadata.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_cnn_file.hpp>
#include <lowbit/deploy/packed_file.hpp>
#include <lowbit/deploy/packed_kbit_file.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include "../../support/file_problem.hpp"
#include "../../support/temp_dir.hpp"

#include "../../support/kbit_recipe.hpp"
#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace lowbit;
namespace ste = lowbit::ste;
using lowbit::test::contains;
using lowbit::test::problem;
using lowbit::test::read_file;
using lowbit::test::without;
using lowbit::test::write_file;

namespace {

std::string kbit_problem(std::filesystem::path const& p)
{
    return problem(p, [](auto const& f) { return deploy::load_packed_kbit(f); });
}

using lowbit::test::kbit_recipe;

// The weight mixes and activation widths of test_kbit.cpp: binary and odd-level layers in every position,
// PACT at 1, 2, 4 and 8 bits.
using binary_hidden_2 = kbit_recipe<ste::dorefa_weight<8>, ste::xnor_weight<>, ste::dorefa_weight<8>, 2>;
using levels_4 = kbit_recipe<ste::dorefa_weight<4>, ste::dorefa_weight<2>, ste::xnor_weight<per_tensor_t>, 4>;
using mixed_8 = kbit_recipe<ste::xnor_weight<>, ste::dorefa_weight<8>, ste::dorefa_weight<1>, 8>;
using levels_1 = kbit_recipe<ste::dorefa_weight<2>, ste::dorefa_weight<4>, ste::dorefa_weight<8>, 1>;

template <class R>
auto make_model(std::size_t inputs, std::size_t hidden, std::size_t classes, std::uint64_t seed)
{
    return nn::mlp({.inputs = inputs, .hidden = hidden, .classes = classes, .init = nn::init::uniform_unit, .seed = seed},
                   typename R::hidden{}, typename R::first{}, typename R::last{}, ste::pact<R::bits>{{.alpha = 1.25f}},
                   nn::bias_head);
}

/// Trained-looking BatchNorm parameters (a quarter of the gammas negative, some zero: decreasing and
/// constant channels, so that negate flags of both values are in the file) and a random head bias.
template <class Model>
void randomise(Model& model, std::uint64_t seed)
{
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    model.for_each_leaf([&](auto& l) {
        if constexpr (requires { l.running_mean(); })
            for (std::size_t j = 0; j < l.gamma().size(); ++j) {
                float const g = u(rng);
                l.gamma()[j] = j % 17 == 5 ? 0.0f : (g < -0.5f ? g : std::abs(g) + 0.1f);
                l.beta()[j] = 0.5f + 0.5f * u(rng);
                l.running_mean()[j] = 2.0f * u(rng);
                l.running_var()[j] = 4.0f + 3.0f * u(rng);
            }
    });
    for (float& b : model.template layer<6>().bias()) b = u(rng);
}

xt::xtensor<std::uint8_t, 2> uniform_codes(std::size_t m, std::size_t k, std::uint64_t seed)
{
    std::mt19937_64 rng(seed);
    xt::xtensor<std::uint8_t, 2> q = xt::xtensor<std::uint8_t, 2>::from_shape({m, k});
    for (auto& c : q) c = static_cast<std::uint8_t>(rng() & 0xFF);
    return q;
}

deploy::packed_kbit_mlp small_packed()
{
    auto model = make_model<levels_4>(12, 20, 3, 5);
    randomise(model, 6);
    return deploy::compile(model, {.input = {.scale = 0.02f, .offset = -1.0f}});
}

} // namespace

TEST_CASE_TEMPLATE("a packed k-bit MLP round-trips through its file bit for bit", R, binary_hidden_2, levels_4,
                   mixed_8, levels_1)
{
    test::temp_dir dir("packed_kbit_file");
    std::size_t const inputs = 50, hidden = 70, classes = 7, m = 64;
    auto model = make_model<R>(inputs, hidden, classes, 17);
    randomise(model, 9);
    deploy::packed_kbit_mlp const packed = deploy::compile(model, {.input = {.scale = 0.0125f, .offset = -1.5f}});
    deploy::save_packed(dir / "pact.lbpk", packed);
    CHECK(std::filesystem::file_size(dir / "pact.lbpk") == deploy::packed_bytes(packed));

    io::archive const a = io::load_archive(dir / "pact.lbpk");
    CHECK(deploy::packed_kind(a) == deploy::packed_model_kind::kbit_mlp);
    CHECK(a.meta().at("format") == "lowbit-packed-kbit-mlp");
    CHECK(a.meta().at("packed_version") == "1");
    CHECK(a.meta().at("layer0.act_bits") == std::to_string(R::bits));
    CHECK(a.meta().count("layer2.act_bits") == 0);

    deploy::packed_kbit_mlp const loaded = deploy::load_packed_kbit(dir / "pact.lbpk");
    CHECK(loaded.input().scale == packed.input().scale);
    CHECK(loaded.input().offset == packed.input().offset);
    REQUIRE(loaded.layers().size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        deploy::packed_kbit_dense const &l = loaded.layers()[i], &p = packed.layers()[i];
        CHECK(l.logits() == p.logits());
        CHECK(l.weights().bits == p.weights().bits);
        CHECK(l.weights().signs == p.weights().signs);
        CHECK(l.weights().codes == p.weights().codes);
        CHECK(l.thresholds().levels == p.thresholds().levels);
        CHECK(l.thresholds().threshold == p.thresholds().threshold);
        CHECK(l.thresholds().negate == p.thresholds().negate);
        CHECK(std::vector<double>(l.scale().begin(), l.scale().end()) ==
              std::vector<double>(p.scale().begin(), p.scale().end()));
        CHECK(std::vector<float>(l.bias().begin(), l.bias().end()) ==
              std::vector<float>(p.bias().begin(), p.bias().end()));
    }
    xt::xtensor<std::uint8_t, 2> const q = uniform_codes(m, inputs, 4);
    CHECK(loaded.codes(q, 0) == packed.codes(q, 0));
    CHECK(loaded.codes(q, 1) == packed.codes(q, 1));
    CHECK(loaded.forward(q) == packed.forward(q));  // exact: the float64 scales are stored as their bits

    // Saving again gives the same bytes: nothing is lost or reordered on the way through.
    deploy::save_packed(dir / "again.lbpk", loaded);
    CHECK(read_file(dir / "again.lbpk") == read_file(dir / "pact.lbpk"));
}

TEST_CASE("packed MLP, CNN and k-bit MLP files: each loader names the kind and the loader of the others")
{
    test::temp_dir dir("packed_kbit_kinds");
    deploy::save_packed(dir / "kbit.lbpk", small_packed());

    auto mlp = nn::mlp({.inputs = 6, .hidden = 8, .classes = 2}, ste::xnor_weight<>{}, ste::dorefa_weight<8>{},
                       ste::dorefa_weight<8>{}, ste::sign_activation{}, nn::bias_head);
    deploy::save_packed(dir / "mlp.lbpk", deploy::compile(mlp));
    CHECK(io::load_archive(dir / "mlp.lbpk").meta().at("format") == "lowbit-packed-mlp");
    CHECK(kbit_problem(dir / "mlp.lbpk") ==
          "this is a packed MLP ('lowbit-packed-mlp'), not a packed k-bit MLP: load it with deploy::load_packed");

    auto cnn = nn::cnn({.channels = 1, .size = 8, .width1 = 4, .width2 = 8, .hidden = 10, .classes = 3, .seed = 2},
                       ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                       nn::bias_head);
    deploy::save_packed(dir / "cnn.lbpk", deploy::compile(cnn));
    CHECK(kbit_problem(dir / "cnn.lbpk") ==
          "this is a packed CNN ('lowbit-packed-cnn'), not a packed k-bit MLP: load it with deploy::load_packed_cnn");

    train::save_checkpoint(dir / "train.lbck", mlp, {{"model", "mlp"}});
    CHECK(kbit_problem(dir / "train.lbck") ==
          "not a packed lowbit model: metadata 'format' is missing, expected 'lowbit-packed-mlp', 'lowbit-packed-cnn', "
          "'lowbit-packed-kbit-mlp', 'lowbit-packed-kbit-cnn' or 'lowbit-packed-model' (a training checkpoint must be compiled first: lowbit-infer --checkpoint)");

    CHECK(contains(problem(dir / "kbit.lbpk", [](auto const& f) { return deploy::load_packed(f); }),
                   "this is a packed k-bit MLP ('lowbit-packed-kbit-mlp'), not a packed MLP: load it with "
                   "deploy::load_packed_kbit"));
    CHECK(contains(problem(dir / "kbit.lbpk", [](auto const& f) { return deploy::load_packed_cnn(f); }),
                   "this is a packed k-bit MLP ('lowbit-packed-kbit-mlp'), not a packed CNN: load it with "
                   "deploy::load_packed_kbit"));
}

TEST_CASE("load_packed_kbit names the file and the problem")
{
    test::temp_dir dir("packed_kbit_errors");
    deploy::packed_kbit_mlp const packed = small_packed();
    deploy::save_packed(dir / "m.lbpk", packed);
    std::string const s = read_file(dir / "m.lbpk");
    io::archive const good = io::load_archive(dir / "m.lbpk");
    auto broken = [&](std::string const& name, auto change) {
        io::archive a = good;
        change(a);
        io::save_archive(dir / name, a);
        return kbit_problem(dir / name);
    };

    CHECK(kbit_problem(dir / "missing.lbpk") == "file not found");

    write_file(dir / "cut.lbpk", s.substr(0, s.size() - 9));
    CHECK(contains(kbit_problem(dir / "cut.lbpk"), "truncated: expected " + std::to_string(s.size()) + " bytes"));
    write_file(dir / "half.lbpk", s.substr(0, s.size() / 2));
    CHECK(contains(kbit_problem(dir / "half.lbpk"), "truncated"));

    for (std::size_t const at : {std::size_t{40}, s.size() / 2, s.size() - 5}) {
        std::string damaged = s;
        damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
        write_file(dir / "damaged.lbpk", damaged);
        CHECK(contains(kbit_problem(dir / "damaged.lbpk"), "checksum mismatch: the file is corrupt"));
    }

    CHECK(broken("p2.lbpk", [](io::archive& a) { a.meta()["packed_version"] = "2"; }) ==
          "unsupported packed k-bit MLP version 2, and this lowbit reads packed k-bit MLP version 1");

    // Missing entries and metadata.
    CHECK(contains(broken("negate.lbpk", [](io::archive& a) { a = without(a, "layer1.negate"); }),
                   "missing entry 'layer1.negate'"));
    CHECK(contains(broken("scale.lbpk", [](io::archive& a) { a = without(a, "layer2.scale"); }),
                   "missing entry 'layer2.scale'"));
    CHECK(broken("act.lbpk", [](io::archive& a) { a.meta().erase("layer0.act_bits"); }) ==
          "metadata 'layer0.act_bits' is missing");
    CHECK(broken("layers.lbpk", [](io::archive& a) { a.meta()["layers"] = "x"; }) ==
          "metadata 'layers' is 'x', not a number up to 1024");

    // Metadata the entries contradict: every shape is checked against it.
    CHECK(broken("bits.lbpk", [](io::archive& a) { a.meta()["layer1.bits"] = "1"; }) ==
          "missing entry 'layer1.signs'");  // levels_4's hidden layer holds int8 codes
    CHECK(contains(broken("actbits.lbpk", [](io::archive& a) { a.meta()["layer0.act_bits"] = "2"; }),
                   "shape mismatch for entry 'layer0.threshold'"));
    CHECK(contains(broken("inputs.lbpk", [](io::archive& a) { a.meta()["inputs"] = "13"; }),
                   "shape mismatch for entry 'layer0.codes'"));
    CHECK(broken("classes.lbpk", [](io::archive& a) { a.meta()["classes"] = "4"; }) ==
          "inconsistent packed model: the last layer writes 3 logits, metadata 'classes' is 4");
    CHECK(broken("two.lbpk", [](io::archive& a) { a.meta()["layers"] = "2"; }) ==
          "inconsistent packed model: the last layer writes 20 logits, metadata 'classes' is 3");
    CHECK(broken("one.lbpk", [](io::archive& a) { a.meta()["layers"] = "1"; }) ==
          "inconsistent packed model: metadata 'layers' is 1, and a packed k-bit MLP has at least two layers");
    CHECK(contains(broken("wbits.lbpk", [](io::archive& a) { a.meta()["layer0.bits"] = "9"; }),
                   "metadata 'layer0.bits' is '9', not a number up to 8"));
    CHECK(contains(broken("abits.lbpk", [](io::archive& a) { a.meta()["layer1.act_bits"] = "0"; }),
                   "act_bits' is 0"));
    CHECK(contains(broken("map.lbpk", [](io::archive& a) { a = without(a, "input.map"); }), "missing entry 'input.map'"));

    // Values no compiled model holds.
    CHECK(contains(broken("flag.lbpk",
                          [&](io::archive& a) {
                              std::vector<std::uint8_t> flags(packed.layers()[0].out(), 2);
                              a = without(a, "layer0.negate");
                              a.add("layer0.negate", {flags.size()}, flags);
                          }),
                   "inconsistent packed model: channel 0 of layer 0 has negate flag 2, not 0 or 1"));
    CHECK(contains(broken("order.lbpk",
                          [&](io::archive& a) {
                              std::vector<std::int32_t> t = packed.layers()[1].thresholds().threshold;
                              t[0] = t[1] + 1;
                              a = without(a, "layer1.threshold");
                              a.add("layer1.threshold", {packed.layers()[1].out(), 15}, t);
                          }),
                   "inconsistent packed model: the thresholds of channel 0 of layer 1 do not ascend"));
    CHECK(contains(broken("nan.lbpk",
                          [&](io::archive& a) {
                              std::vector<std::uint64_t> bits(3, std::bit_cast<std::uint64_t>(
                                                                     std::numeric_limits<double>::quiet_NaN()));
                              a = without(a, "layer2.scale");
                              a.add("layer2.scale", {3}, bits);
                          }),
                   "inconsistent packed model: the scale of logit 0 is not finite"));
    CHECK(contains(broken("type.lbpk",
                          [&](io::archive& a) {
                              a = without(a, "layer0.negate");
                              a.add("layer0.negate", {packed.layers()[0].out()},
                                    std::vector<float>(packed.layers()[0].out(), 0.0f));
                          }),
                   "element type mismatch for entry 'layer0.negate'"));

    // A failed load leaves the destination as it was.
    deploy::packed_kbit_mlp target = deploy::load_packed_kbit(dir / "m.lbpk");
    xt::xtensor<std::uint8_t, 2> const q = uniform_codes(5, 12, 1);
    xt::xtensor<float, 2> const before = target.forward(q);
    CHECK_THROWS_AS(target = deploy::load_packed_kbit(dir / "order.lbpk"), io::io_error);
    CHECK(target.forward(q) == before);
}
