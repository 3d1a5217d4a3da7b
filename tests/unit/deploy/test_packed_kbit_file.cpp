// SPDX-License-Identifier: MIT
// The packed model file (deploy/packed_model_file.hpp) of k-bit (PACT) MLPs lowered by deploy::compile: a
// bit-exact round trip of random PACT MLPs (several weight mixes and activation bit widths: identical logits,
// codes between the steps, stored state and bytes), and one clear io_error naming the file for each problem of
// its k-bit steps -- missing, truncated, corrupt, missing entry or metadata, shapes or values that contradict
// the metadata (code widths, negate flags, thresholds that do not ascend, element types).
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>

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
#include <random>
#include <string>
#include <variant>
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
    return problem(p, [](auto const& f) { return deploy::load_packed_model(f); });
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

/// Random inputs on the grid of @p map (scale q + offset for uniform codes q), so that the input codes are every
/// byte.
xt::xtensor<float, 2> uniform_inputs(std::size_t m, std::size_t k, std::uint64_t seed, deploy::input_map map)
{
    std::mt19937_64 rng(seed);
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({m, k});
    for (float& v : x) v = map.scale * static_cast<float>(rng() & 0xFF) + map.offset;
    return x;
}

deploy::input_map const small_map{.scale = 0.02f, .offset = -1.0f};

/// A 12-20-20-3 PACT MLP with 4-bit codes: steps input codes, two integer layers writing codes (step1: 4-bit
/// weights, step2: 2-bit weights), the binary logits layer (step3).
deploy::packed_model small_packed()
{
    auto model = make_model<levels_4>(12, 20, 3, 5);
    randomise(model, 6);
    return deploy::compile(model, {.input = small_map});
}

/// The integer dense step @p i of @p m.
deploy::integer_dense_step const& kbit_step(deploy::packed_model const& m, std::size_t i)
{
    return std::get<deploy::integer_dense_step>(m.steps()[i].op);
}

} // namespace

TEST_CASE_TEMPLATE("a packed k-bit MLP round-trips through its file bit for bit", R, binary_hidden_2, levels_4,
                   mixed_8, levels_1)
{
    test::temp_dir dir("packed_kbit_file");
    std::size_t const inputs = 50, hidden = 70, classes = 7, m = 64;
    deploy::input_map const map{.scale = 0.0125f, .offset = -1.5f};
    auto model = make_model<R>(inputs, hidden, classes, 17);
    randomise(model, 9);
    deploy::packed_model const packed = deploy::compile(model, {.input = map});
    REQUIRE(packed.steps().size() == 4);
    deploy::save_packed(dir / "pact.lbpk", packed);
    CHECK(std::filesystem::file_size(dir / "pact.lbpk") == deploy::packed_bytes(packed));

    io::archive const a = io::load_archive(dir / "pact.lbpk");
    CHECK(a.meta().at("format") == "lowbit-packed-model");
    CHECK(a.meta().at("packed_version") == "1");
    CHECK(a.meta().at("step1.output") == "codes");
    CHECK(a.meta().at("step1.act_bits") == std::to_string(R::bits));
    CHECK(a.meta().at("step2.act_bits") == std::to_string(R::bits));
    CHECK(a.meta().at("step3.output") == "floats");
    CHECK(a.meta().count("step3.act_bits") == 0);

    deploy::packed_model const loaded = deploy::load_packed_model(dir / "pact.lbpk");
    CHECK(loaded.inputs() == packed.inputs());
    CHECK(loaded.classes() == packed.classes());
    REQUIRE(loaded.steps().size() == 4);
    auto const& map_loaded = std::get<deploy::input_codes_step>(loaded.steps()[0].op).map;
    CHECK(map_loaded.scale == map.scale);
    CHECK(map_loaded.offset == map.offset);
    for (std::size_t i = 1; i < 4; ++i) {
        CAPTURE(i);
        deploy::integer_dense_step const &l = kbit_step(loaded, i), &p = kbit_step(packed, i);
        CHECK(l.input() == p.input());
        CHECK(l.writes() == p.writes());
        CHECK(l.weights().bits == p.weights().bits);
        CHECK(l.weights().odd == p.weights().odd);
        CHECK(l.weights().signs == p.weights().signs);
        CHECK(l.weights().codes == p.weights().codes);
        CHECK(l.weights().scale == p.weights().scale);
        if (auto const* t = std::get_if<deploy::level_thresholds>(&p.stage())) {
            auto const& u = std::get<deploy::level_thresholds>(l.stage());
            CHECK(u.levels == t->levels);
            CHECK(u.threshold == t->threshold);
            CHECK(u.negate == t->negate);
        } else {
            // The float output stage: a, the offsets and the steps are float64 and stored as their bits.
            auto const& y = std::get<deploy::affine_output>(p.stage());
            auto const& z = std::get<deploy::affine_output>(l.stage());
            CHECK(std::bit_cast<std::uint64_t>(z.a) == std::bit_cast<std::uint64_t>(y.a));
            CHECK(z.offset == y.offset);
            CHECK(z.step == y.step);
            CHECK(z.bias == y.bias);
        }
    }
    xt::xtensor<float, 2> const x = uniform_inputs(m, inputs, 4, map);
    for (std::size_t const steps : {std::size_t{2}, std::size_t{3}}) {
        deploy::activations const l = loaded.run(x, steps), p = packed.run(x, steps);
        CHECK(l.kind == deploy::encoding::codes);
        CHECK(l.codes == p.codes);
    }
    CHECK(loaded.forward(x) == packed.forward(x));

    // Saving again gives the same bytes: nothing is lost or reordered on the way through.
    deploy::save_packed(dir / "again.lbpk", loaded);
    CHECK(read_file(dir / "again.lbpk") == read_file(dir / "pact.lbpk"));
}

TEST_CASE("load_packed_model names the file and the problem of a k-bit MLP's steps")
{
    test::temp_dir dir("packed_kbit_errors");
    deploy::packed_model const packed = small_packed();
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

    // Missing entries and metadata.
    CHECK(contains(broken("negate.lbpk", [](io::archive& a) { a = without(a, "step2.negate"); }),
                   "missing entry 'step2.negate'"));
    CHECK(contains(broken("affine.lbpk", [](io::archive& a) { a = without(a, "step3.affine"); }),
                   "missing entry 'step3.affine'"));
    CHECK(broken("act.lbpk", [](io::archive& a) { a.meta().erase("step1.act_bits"); }) ==
          "metadata 'step1.act_bits' is missing");

    // Metadata the entries contradict: every shape is checked against it.
    CHECK(broken("bits.lbpk", [](io::archive& a) { a.meta()["step2.bits"] = "1"; }) ==
          "missing entry 'step2.signs'");  // levels_4's hidden layer holds int8 codes
    CHECK(contains(broken("actbits.lbpk", [](io::archive& a) { a.meta()["step1.act_bits"] = "2"; }),
                   "shape mismatch for entry 'step1.threshold'"));
    CHECK(contains(broken("wbits.lbpk", [](io::archive& a) { a.meta()["step1.bits"] = "9"; }),
                   "metadata 'step1.bits' is '9', not a number up to 8"));
    CHECK(contains(broken("abits.lbpk", [](io::archive& a) { a.meta()["step2.act_bits"] = "0"; }), "act_bits' is 0"));
    std::string const inputs = broken("inputs.lbpk", [](io::archive& a) { a.meta()["inputs"] = "13"; });
    CHECK(contains(inputs, "inconsistent packed model"));
    CHECK(contains(inputs, "an integer dense step reads 12 features, not 13"));

    // Values no lowered model holds.
    auto const& t1 = std::get<deploy::level_thresholds>(kbit_step(packed, 1).stage());
    auto const& t2 = std::get<deploy::level_thresholds>(kbit_step(packed, 2).stage());
    std::string const flag = broken("flag.lbpk", [&](io::archive& a) {
        a = without(a, "step1.negate");
        a.add("step1.negate", {t1.size()}, std::vector<std::uint8_t>(t1.size(), 2));
    });
    CHECK(contains(flag, "inconsistent packed model"));
    CHECK(contains(flag, "has negate flag 2, not 0 or 1"));
    std::string const order = broken("order.lbpk", [&](io::archive& a) {
        std::vector<std::int32_t> t = t2.threshold;
        t[0] = t[1] + 1;
        a = without(a, "step2.threshold");
        a.add("step2.threshold", {t2.size(), static_cast<std::size_t>(t2.levels)}, t);
    });
    CHECK(contains(order, "inconsistent packed model"));
    CHECK(contains(order, "the thresholds of channel 0 of"));
    CHECK(contains(order, "do not ascend"));
    CHECK(contains(broken("type.lbpk",
                          [&](io::archive& a) {
                              a = without(a, "step1.negate");
                              a.add("step1.negate", {t1.size()}, std::vector<float>(t1.size(), 0.0f));
                          }),
                   "element type mismatch for entry 'step1.negate'"));

    // A failed load leaves the destination as it was.
    deploy::packed_model target = deploy::load_packed_model(dir / "m.lbpk");
    xt::xtensor<float, 2> const x = uniform_inputs(5, 12, 1, small_map);
    xt::xtensor<float, 2> const before = target.forward(x);
    CHECK_THROWS_AS(target = deploy::load_packed_model(dir / "order.lbpk"), io::io_error);
    CHECK(target.forward(x) == before);
}
