// SPDX-License-Identifier: MIT
// k-bit (PACT) activations in the deploy path:
//  - fold_level_thresholds against the float path (the model's own BatchNorm, ReLU and PACT, one row per v)
//    for EVERY integer v of a range, increasing, decreasing and constant channels, Bits 1, 2, 4 and 8;
//  - deploy::compile of random small PACT MLPs (no training) against plain integer loops and the fake-quant
//    model's evaluation forward: identical hidden codes and argmax, logits within the float-summation bound;
//  - DoReFa activations and erased (ste::any_quantizer) weights lower as their concrete twin; mid-tread levels in
//    the packed file;
//  - the errors of fold_level_thresholds, packed_kbit_dense, a packed model's k-bit steps and compile.
#include <lowbit/deploy/audit.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include "../../support/argmax.hpp"

#include "../../support/kbit_recipe.hpp"
#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <type_traits>
#include <variant>
#include <vector>

using namespace lowbit;
namespace ste = lowbit::ste;

namespace {

template <int Bits>
using pact_act = nn::sequential<nn::relu, nn::quantize_activation<ste::pact<Bits>>>;

template <int Bits>
pact_act<Bits> make_act(float alpha)
{
    return pact_act<Bits>{nn::relu{}, nn::quantize_activation<ste::pact<Bits>>(ste::pact<Bits>{{.alpha = alpha}})};
}

/// The float model's codes of one row of pre-activations: BN (evaluation), ReLU, PACT, then k = a / (alpha / n).
template <int Bits>
std::vector<int> float_codes(nn::batch_norm<2> bn, pact_act<Bits> act, float alpha, std::vector<float> const& y)
{
    xt::xtensor<float, 2> row = xt::xtensor<float, 2>::from_shape({1, y.size()});
    std::copy(y.begin(), y.end(), row.begin());
    xt::xtensor<float, 2> const out = act.forward(bn.forward(row, {.training = false}), {.training = false});
    constexpr double n = (1 << Bits) - 1;
    std::vector<int> q(y.size());
    for (std::size_t j = 0; j < y.size(); ++j) q[j] = static_cast<int>(std::nearbyint(out.data()[j] / alpha * n));
    return q;
}

using lowbit::test::kbit_recipe;

using binary_hidden_2 = kbit_recipe<ste::dorefa_weight<8>, ste::xnor_weight<>, ste::dorefa_weight<8>, 2>;
using levels_4 = kbit_recipe<ste::dorefa_weight<4>, ste::dorefa_weight<2>, ste::xnor_weight<per_tensor_t>, 4>;
using mixed_8 = kbit_recipe<ste::xnor_weight<>, ste::dorefa_weight<8>, ste::dorefa_weight<1>, 8>;
using levels_1 = kbit_recipe<ste::dorefa_weight<2>, ste::dorefa_weight<4>, ste::dorefa_weight<8>, 1>;
// Mid-tread grids, stored as integer levels: SQWA's 3-bit uniform grid, TWN, LSQ's two's-complement grid.
using ternary_2 = kbit_recipe<ste::uniform_weight<3>, ste::twn_weight<>, ste::lsq<4, grid::signed_int>, 2>;

template <class R>
auto make_model(std::size_t inputs, std::size_t hidden, std::size_t classes, float alpha, std::uint64_t seed)
{
    return nn::mlp({.inputs = inputs, .hidden = hidden, .classes = classes, .init = nn::init::uniform_unit, .seed = seed},
                   typename R::hidden{}, typename R::first{}, typename R::last{},
                   ste::pact<R::bits>{{.alpha = alpha}}, nn::bias_head);
}

/// Trained-looking BatchNorm statistics (as test_packed.cpp): the running statistics of one batch, then random
/// gammas (a quarter negative, a few zero) and betas.
template <class Model>
void calibrate_batch_norm(Model& model, xt::xtensor<float, 2> const& x, std::uint64_t seed)
{
    model.for_each_leaf([](auto& l) {
        if constexpr (requires { l.begin_recalibration(); }) l.begin_recalibration();
    });
    (void)model.forward(x, {.training = true});
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    model.for_each_leaf([&](auto& l) {
        if constexpr (requires { l.begin_recalibration(); }) {
            l.end_recalibration();
            for (std::size_t j = 0; j < l.gamma().size(); ++j) {
                float const g = u(rng);
                l.gamma()[j] = j % 17 == 5 ? 0.0f : (g < -0.5f ? g : std::abs(g) + 0.1f);
                l.beta()[j] = 0.5f + 0.5f * u(rng);  // centred inside PACT's range, so every code occurs
            }
        }
    });
}

xt::xtensor<std::uint8_t, 2> random_codes(std::size_t m, std::size_t k, std::uint64_t seed)
{
    std::mt19937_64 rng(seed);
    xt::xtensor<std::uint8_t, 2> q = xt::xtensor<std::uint8_t, 2>::from_shape({m, k});
    for (auto& c : q) c = static_cast<std::uint8_t>(rng() % 4 == 0 ? 0 : rng() & 0xFF);
    return q;
}

xt::xtensor<float, 2> decode(xt::xtensor<std::uint8_t, 2> const& q, deploy::input_map map)
{
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape(q.shape());
    for (std::size_t i = 0; i < q.size(); ++i) x.data()[i] = map.scale * static_cast<float>(q.data()[i]) + map.offset;
    return x;
}

using lowbit::test::argmax_row;

/// PACT's codes of activations a: round(a / (alpha / n)).
xt::xtensor<std::uint8_t, 2> to_codes(xt::xtensor<float, 2> const& a, float alpha, int bits)
{
    double const n = (1 << bits) - 1;
    xt::xtensor<std::uint8_t, 2> q = xt::xtensor<std::uint8_t, 2>::from_shape(a.shape());
    for (std::size_t i = 0; i < a.size(); ++i)
        q.data()[i] = static_cast<std::uint8_t>(std::nearbyint(a.data()[i] / alpha * n));
    return q;
}

/// v of a packed layer's weights @p w by plain loops over its integer levels, on @p m rows of codes @p q.
std::vector<std::int64_t> loop_integers(deploy::packed_weights const& w, xt::xtensor<std::uint8_t, 2> const& q,
                                        std::size_t m)
{
    std::vector<std::int64_t> v(m * w.out, 0);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < w.out; ++j)
            for (std::size_t k = 0; k < w.in; ++k) v[i * w.out + j] += w.level(j, k) * q(i, k);
    return v;
}

/// The codes the packed model holds after its first @p count steps on @p x, [rows, features].
xt::xtensor<std::uint8_t, 2> codes_after(deploy::packed_model const& packed, xt::xtensor<float, 2> const& x,
                                         std::size_t count)
{
    deploy::activations const a = packed.run(x, count);
    REQUIRE(a.kind == deploy::encoding::codes);
    xt::xtensor<std::uint8_t, 2> c = xt::xtensor<std::uint8_t, 2>::from_shape({a.rows, a.features});
    std::copy(a.codes.begin(), a.codes.end(), c.begin());
    return c;
}

} // namespace

TEST_CASE_TEMPLATE("fold_level_thresholds equals BatchNorm + ReLU + PACT for every integer v", B,
                   std::integral_constant<int, 1>, std::integral_constant<int, 2>, std::integral_constant<int, 4>,
                   std::integral_constant<int, 8>)
{
    constexpr int bits = B::value;
    constexpr int n = (1 << bits) - 1;
    std::size_t const c = 12;
    std::int64_t const range = 1500;
    float const alpha = 1.75f;
    nn::batch_norm<2> bn({.channels = c});
    std::mt19937_64 rng(bits);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<double> step(c);
    for (std::size_t j = 0; j < c; ++j) {
        bn.running_mean()[j] = 0.3f * u(rng);
        bn.running_var()[j] = 0.5f + std::abs(u(rng));
        // Channels 0-4 increase, 5-9 decrease, 10 is constant (gamma 0), 11 saturates early (steep).
        bn.gamma()[j] = j < 5 ? 0.4f + std::abs(u(rng)) : j < 10 ? -(0.4f + std::abs(u(rng))) : j == 10 ? 0.0f : 8.0f;
        bn.beta()[j] = 0.8f + 0.5f * u(rng);
        step[j] = (1.0 + static_cast<double>(j)) / 1024.0;  // y in about [-1.5, 1.5] .. [-18, 18]
    }
    auto y = [&](std::size_t j, std::int64_t v) { return static_cast<float>(step[j] * static_cast<double>(v)); };
    pact_act<bits> const act = make_act<bits>(alpha);
    deploy::level_thresholds const t = deploy::fold_level_thresholds(bn, act, -range, range, y);
    REQUIRE(t.size() == c);
    REQUIRE(t.levels == n);
    for (std::size_t j = 0; j < c; ++j) {
        CHECK(t.negate[j] == (j >= 5 && j < 10 ? 1 : 0));
        CHECK(std::is_sorted(t.threshold.begin() + static_cast<std::ptrdiff_t>(j * n),
                             t.threshold.begin() + static_cast<std::ptrdiff_t>((j + 1) * n)));
    }
    std::size_t mismatches = 0;
    std::vector<char> seen(static_cast<std::size_t>(n) + 1, 0);
    std::vector<float> row(c);
    for (std::int64_t v = -range; v <= range; ++v) {
        for (std::size_t j = 0; j < c; ++j) row[j] = y(j, v);
        std::vector<int> const ref = float_codes<bits>(bn, act, alpha, row);
        for (std::size_t j = 0; j < c; ++j) {
            mismatches += t.code(j, v) != ref[j];
            seen[static_cast<std::size_t>(ref[j])] = 1;
        }
    }
    CHECK(mismatches == 0);
    // The range covers every code, so every threshold was searched for, not only the ends.
    CHECK(std::count(seen.begin(), seen.end(), 1) == n + 1);
}

TEST_CASE("fold_level_thresholds: PACT's alpha sign is ignored, and bad ranges and alphas are refused")
{
    nn::batch_norm<2> bn({.channels = 3});
    auto y = [](std::size_t, std::int64_t v) { return static_cast<float>(v) / 64.0f; };
    deploy::level_thresholds const plus = deploy::fold_level_thresholds(bn, make_act<2>(1.5f), -200, 200, y);
    deploy::level_thresholds const minus = deploy::fold_level_thresholds(bn, make_act<2>(-1.5f), -200, 200, y);
    CHECK(plus.threshold == minus.threshold);
    // Identity BN (up to eps): code 1 from y = 0.25 (round(0.5) = 0 ties to even: from just above 0.25).
    CHECK(plus.code(0, 0) == 0);
    CHECK(plus.code(0, 200) == 3);
    CHECK_THROWS_WITH_AS((void)deploy::fold_level_thresholds(bn, make_act<2>(1.0f), 5, 4, y),
                         doctest::Contains("is empty or does not fit int32"), invalid_input);
    CHECK_THROWS_WITH_AS((void)deploy::fold_level_thresholds(bn, make_act<2>(1.0f), -2147483647, 0, y),
                         doctest::Contains("does not fit int32"), invalid_input);
    CHECK_THROWS_WITH_AS((void)deploy::fold_level_thresholds(bn, make_act<2>(0.0f), -4, 4, y),
                         doctest::Contains("alpha must be finite and non-zero"), invalid_input);
    static_assert(deploy::CodeActivationLayer<pact_act<8>>);
    static_assert(deploy::CodeActivationLayer<nn::quantize_activation<ste::pact<3>>>);
    static_assert(!deploy::CodeActivationLayer<pact_act<9>>);  // codes must fit the kernel's 8-bit inputs
    static_assert(!deploy::CodeActivationLayer<nn::quantize_activation<ste::sign_activation>>);
    // Read through policy_traits: any unsigned grid of 1..8 bits, not a list of PACT types.
    static_assert(deploy::CodeActivationLayer<nn::quantize_activation<ste::dorefa_activation<4>>>);
    static_assert(deploy::CodeActivationLayer<nn::quantize_activation<ste::lsq<2, grid::unsigned_int>>>);
    static_assert(!deploy::CodeActivationLayer<nn::quantize_activation<ste::lsq<2, grid::signed_int>>>);
    static_assert(!deploy::PackableWeightPolicy<ste::dorefa_weight<12>>);  // wider than int8 codes
}

TEST_CASE_TEMPLATE("lowered PACT MLPs equal the integer loops and the fake-quant model's codes and argmax", R,
                   binary_hidden_2, levels_4, mixed_8, levels_1, ternary_2)
{
    std::size_t const inputs = 50, hidden = 70, classes = 7, m = 64;
    float const alpha = 1.25f;
    deploy::input_map const map{.scale = 0.0125f, .offset = -1.5f};  // a standardised-looking input
    auto model = make_model<R>(inputs, hidden, classes, alpha, 17);
    xt::xtensor<std::uint8_t, 2> const q = random_codes(m, inputs, 4);
    xt::xtensor<float, 2> const x = decode(q, map);
    calibrate_batch_norm(model, x, 9);
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<float> u(-0.5f, 0.5f);
    for (float& b : model.template layer<6>().bias()) b = u(rng);
    nn::forward_context const eval{.training = false};
    xt::xtensor<float, 2> const before = model.forward(x, eval);

    deploy::packed_model const packed = deploy::compile(model, {.input = map});
    CHECK(model.forward(x, eval) == before);  // lowering leaves the model as it was
    // The input map's codes, two integer layers writing k-bit codes (BatchNorm, ReLU and PACT in their
    // thresholds), and the logits layer's float outputs.
    REQUIRE(packed.steps().size() == 4);
    CHECK(std::holds_alternative<deploy::input_codes_step>(packed.steps()[0].op));
    auto const& d1 = std::get<deploy::integer_dense_step>(packed.steps()[1].op);
    auto const& d2 = std::get<deploy::integer_dense_step>(packed.steps()[2].op);
    auto const& d3 = std::get<deploy::integer_dense_step>(packed.steps()[3].op);
    deploy::level_thresholds const& t1 = std::get<deploy::level_thresholds>(d1.stage());
    deploy::level_thresholds const& t2 = std::get<deploy::level_thresholds>(d2.stage());
    deploy::affine_output const& out = std::get<deploy::affine_output>(d3.stage());
    CHECK(t1.levels == (1 << R::bits) - 1);
    CHECK(t2.levels == (1 << R::bits) - 1);

    // 1. The packed steps against plain integer loops over their weights and their own thresholds: the codes of
    // each layer are the thresholds' codes of the exact sums v, and each logit is the float output of its v.
    xt::xtensor<std::uint8_t, 2> const c0 = codes_after(packed, x, 1);
    CHECK(c0 == q);  // the input map gives back the codes x was decoded from
    xt::xtensor<std::uint8_t, 2> const c1 = codes_after(packed, x, 2), c2 = codes_after(packed, x, 3);
    std::vector<std::int64_t> v = loop_integers(d1.weights(), q, m);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < hidden; ++j) wrong += c1(i, j) != t1.code(j, v[i * hidden + j]);
    v = loop_integers(d2.weights(), c1, m);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < hidden; ++j) wrong += c2(i, j) != t2.code(j, v[i * hidden + j]);
    CHECK(wrong == 0);
    xt::xtensor<float, 2> const logits = packed.forward(x);
    v = loop_integers(d3.weights(), c2, m);
    std::size_t wrong_logits = 0;
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < classes; ++j) wrong_logits += logits(i, j) != out.value(j, v[i * classes + j]);
    CHECK(wrong_logits == 0);

    // 2. The fake-quant model, layer by layer: the same codes (the thresholds are exact; only the model's own
    // float sums could move a value that is within rounding of a PACT step, essentially never on random data).
    auto const a1 = model.template layer<2>().forward(model.template layer<1>().forward(model.template layer<0>().forward(x, eval), eval), eval);
    auto const a2 = model.template layer<5>().forward(model.template layer<4>().forward(model.template layer<3>().forward(a1, eval), eval), eval);
    xt::xtensor<float, 2> const fake = model.template layer<6>().forward(a2, eval);
    CHECK(fake == before);
    xt::xtensor<std::uint8_t, 2> const f1 = to_codes(a1, alpha, R::bits), f2 = to_codes(a2, alpha, R::bits);
    std::size_t differing = 0, nonzero = 0;
    for (std::size_t i = 0; i < f1.size(); ++i) {
        differing += (f1.data()[i] != c1.data()[i]) + (f2.data()[i] != c2.data()[i]);
        nonzero += (c1.data()[i] != 0) + (c2.data()[i] != 0);
    }
    CHECK(differing == 0);
    CHECK(nonzero > f1.size() / 4);  // the data exercise the thresholds, not only ReLU's zeros

    // 3. Logits within the float-summation bound (K + 2) 2^-23 (alpha sum_k |Q_jk| + |b_j| + 2), K = hidden,
    // and the argmax equal or a tie within it.
    std::vector<float> const w = model.template layer<6>().weight().values();
    auto policy = model.template layer<6>().weight().policy();
    std::vector<float> qw(w.size());
    policy.forward(w, qw);
    auto const bias = model.template layer<6>().bias();
    double worst_ratio = 0.0;
    std::vector<double> tolerance(classes);
    for (std::size_t j = 0; j < classes; ++j) {
        double s = std::abs(static_cast<double>(bias[j])) + 2.0;
        for (std::size_t k = 0; k < hidden; ++k) s += alpha * std::abs(static_cast<double>(qw[j * hidden + k]));
        tolerance[j] = static_cast<double>(hidden + 2) * std::ldexp(1.0, -23) * s;
    }
    std::size_t agree = 0, ties = 0;
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < classes; ++j)
            worst_ratio = std::max(worst_ratio, std::abs(static_cast<double>(fake(i, j)) - logits(i, j)) / tolerance[j]);
        std::size_t const a = argmax_row(fake, i), b = argmax_row(logits, i);
        agree += a == b;
        ties += a != b && std::abs(static_cast<double>(fake(i, a)) - fake(i, b)) <= 2 * tolerance[a];
    }
    CHECK(worst_ratio <= 1.0);
    CHECK(agree + ties == m);
    MESSAGE("Bits " << R::bits << ": " << differing << " differing hidden codes of " << 2 * f1.size()
                    << ", largest logit difference " << worst_ratio << " of the tolerance, argmax " << agree << "/" << m);
}

TEST_CASE("packed_kbit_dense and a packed model's k-bit steps refuse what they cannot run, with clear messages")
{
    deploy::packed_weights w{.in = 3, .out = 2, .bits = 2, .codes = {0, 1, -2, 0, 0, 0}};
    deploy::level_thresholds t{.levels = 3, .threshold = {0, 1, 2, 0, 1, 2}, .negate = {0, 1}};
    deploy::packed_kbit_dense const hidden(w, t);
    CHECK_THROWS_WITH_AS(deploy::packed_kbit_dense(w, deploy::level_thresholds{.levels = 3, .threshold = {0, 1, 2},
                                                                                .negate = {0}}),
                         doctest::Contains("thresholds of 3 levels for 2 channels"), invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_kbit_dense(w, std::vector<double>{1.0}, std::vector<float>{0.0f, 0.0f}),
                         doctest::Contains("has 1 scales and 2 biases"), invalid_input);
    deploy::packed_weights bad = w;
    bad.codes[0] = 5;
    CHECK_THROWS_WITH_AS(deploy::packed_kbit_dense(bad, t), doctest::Contains("outside [-2, 1]"), invalid_input);
    xt::xtensor<std::uint8_t, 2> x = xt::xtensor<std::uint8_t, 2>::from_shape({1, 4});
    std::uint8_t y[2] = {};
    CHECK_THROWS_WITH_AS(hidden.forward(kernels::matrix_view<std::uint8_t>{x.data(), 1, 4, 4}, y, 2),
                         doctest::Contains("expected 3 input features, got 4"), invalid_input);
    float l[2] = {};
    CHECK_THROWS_WITH_AS(hidden.forward(kernels::matrix_view<std::uint8_t>{x.data(), 1, 3, 4}, l, 2),
                         doctest::Contains("writes codes, not logits"), invalid_input);
    // Codes: v = (2c + 1) . q for q = (1, 2, 3): channel 0 levels (1, 3, -3): v = -2, u = -2 -> code 0;
    // channel 1 levels (1, 1, 1): v = 6, on -v: -6 -> code 0; q = 0: v = 0, channel 0 -> 1, channel 1 -> 1.
    xt::xtensor<std::uint8_t, 2> q = {{1, 2, 3}, {0, 0, 0}};
    std::uint8_t out[4] = {};
    hidden.forward(kernels::matrix_view<std::uint8_t>{q.data(), 2, 3, 3}, out, 2);
    CHECK(out[0] == 0);
    CHECK(out[1] == 0);
    CHECK(out[2] == 1);
    CHECK(out[3] == 1);

    // A packed model of these layers: input codes (scale 1: the floats are the codes), the hidden layer above,
    // and logits y_j = float(v step_j) + b_j from 2-bit weights of level 1.
    deploy::packed_weights w2{.in = 2, .out = 2, .bits = 2, .codes = {0, 0, 0, 0}};
    deploy::affine_output const affine{.a = 1.0, .offset = {0.0, 0.0}, .step = {0.5, 0.25}, .bias = {1.0f, 0.0f}};
    deploy::packed_step const input{deploy::input_codes_step{{.scale = 1.0f, .offset = 0.0f}}};
    deploy::packed_step const codes{deploy::integer_dense_step(deploy::layer_input::codes, w, t)};
    deploy::packed_step const last{deploy::integer_dense_step(deploy::layer_input::codes, w2, affine)};
    CHECK_THROWS_WITH_AS(deploy::integer_dense_step(deploy::layer_input::codes, w2,
                                                    deploy::affine_output{.a = 1.0, .offset = {0.0, 0.0}, .step = {0.5},
                                                                          .bias = {1.0f, 0.0f}}),
                         doctest::Contains("the float output needs 2 offsets, steps and biases"), invalid_input);
    // Steps that do not chain: codes of the wrong width, a layer on the float input, a model that ends on codes.
    CHECK_THROWS_WITH_AS(deploy::packed_model(3, 2, {input, codes, codes, last}),
                         doctest::Contains("an integer dense step reads 3 features, not 2"), invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_model(3, 2, {codes, last}), doctest::Contains("an integer dense step reads codes"),
                         invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_model(3, 2, {input, codes}),
                         doctest::Contains("the last step writes 2 codes or sign bits, not 2 floats"), invalid_input);
    deploy::packed_model const m(3, 2, {input, codes, last});
    xt::xtensor<float, 2> const logits = m.forward(xt::xtensor<float, 2>{{1.0f, 2.0f, 3.0f}, {0.0f, 0.0f, 0.0f}});
    // Row 0: codes (0, 0) -> v = 0: logits (1, 0); row 1: codes (1, 1) -> v = 2 per channel: (2, 0.5).
    CHECK(logits(0, 0) == 1.0f);
    CHECK(logits(0, 1) == 0.0f);
    CHECK(logits(1, 0) == 2.0f);
    CHECK(logits(1, 1) == 0.5f);
    deploy::activations const hidden_codes = m.run(xt::xtensor<float, 2>{{1.0f, 2.0f, 3.0f}, {0.0f, 0.0f, 0.0f}}, 2);
    CHECK(hidden_codes.kind == deploy::encoding::codes);
    CHECK(std::vector<std::uint8_t>(hidden_codes.codes.begin(), hidden_codes.codes.end()) ==
          std::vector<std::uint8_t>{0, 0, 1, 1});
    CHECK_THROWS_WITH_AS((void)m.forward(xt::xtensor<float, 2>(xt::zeros<float>({1, 4}))),
                         doctest::Contains("expected 3 input features, got 4"), invalid_input);
}

TEST_CASE("DoReFa activations and erased weights, as lowbit-train builds its models, lower like their concrete twin")
{
    // Policies are read through policy_traits: DoReFa's activations are unsigned 4-bit codes as PACT's are, and a
    // weight quantizer chosen at run time (ste::any_quantizer) is checked when compile() lowers its layer.
    std::size_t const inputs = 40, hidden = 48, classes = 5, m = 32;
    deploy::input_map const map{.scale = 0.0125f, .offset = -1.5f};
    nn::mlp_options const o{.inputs = inputs, .hidden = hidden, .classes = classes, .init = nn::init::uniform_unit,
                            .seed = 5};
    auto concrete = nn::mlp(o, ste::dorefa_weight<2>{}, ste::dorefa_weight<8>{}, ste::xnor_weight<>{},
                            ste::dorefa_activation<4>{}, nn::bias_head);
    auto erased = nn::mlp(o, ste::any_quantizer{ste::dorefa_weight<2>{}}, ste::any_quantizer{ste::dorefa_weight<8>{}},
                          ste::any_quantizer{ste::xnor_weight<>{}}, ste::dorefa_activation<4>{}, nn::bias_head);
    xt::xtensor<std::uint8_t, 2> const q = random_codes(m, inputs, 6);
    xt::xtensor<float, 2> const x = decode(q, map);
    calibrate_batch_norm(concrete, x, 2);
    train::from_archive(erased, train::to_archive(concrete));
    deploy::packed_model const a = deploy::compile(concrete, {.input = map});
    deploy::packed_model const b = deploy::compile(erased, {.input = map});
    CHECK(io::archive_bytes(deploy::to_archive(a)) == io::archive_bytes(deploy::to_archive(b)));
    CHECK(std::get<deploy::level_thresholds>(std::get<deploy::integer_dense_step>(a.steps()[1].op).stage()).levels == 15);
    CHECK(b.forward(x) == a.forward(x));
    xt::xtensor<std::uint8_t, 1> const labels = xt::zeros<std::uint8_t>({m});
    deploy::rounding_audit const audit = deploy::audit(erased, b, x, labels, {.input = map});
    CHECK(audit.values + audit.skipped == 2 * hidden * m);  // both code layers, every code
    CHECK(audit.unexplained == 0);
    CHECK(audit.argmax_disagreements_where_codes_agree == 0);
    CHECK(audit.logits_outside == 0);

    // An erased policy without a packed form -- here an empty any_quantizer, the identity: float weights -- is
    // refused when compile() meets it, naming the layer (the hidden dense layer is layer 4: the leaves are
    // numbered in order, dense 0, batch_norm 1, relu 2, the activation quantizer 3).
    auto float_hidden = nn::mlp(o, ste::any_quantizer{}, ste::any_quantizer{ste::dorefa_weight<8>{}},
                                ste::any_quantizer{ste::dorefa_weight<8>{}}, ste::dorefa_activation<4>{}, nn::bias_head);
    std::string refusal;
    try {
        (void)deploy::compile(float_hidden, {.input = map});
    } catch (invalid_input const& e) {
        refusal = e.what();
    }
    CHECK(refusal.find("layer 4 (dense)") != std::string::npos);
    CHECK(refusal.find("weights are float, which has no packed form") != std::string::npos);

    // Activations chosen at run time may write codes of different widths: each code layer has its own.
    auto mixed_codes = nn::mlp(o, ste::any_quantizer{ste::dorefa_weight<2>{}}, ste::any_quantizer{ste::dorefa_weight<8>{}},
                               ste::any_quantizer{ste::dorefa_weight<8>{}}, ste::any_quantizer{ste::pact<2>{}},
                               nn::bias_head);
    mixed_codes.template layer<5>().template layer<1>().quantizer() = ste::pact<4>{};
    calibrate_batch_norm(mixed_codes, x, 3);
    deploy::packed_model const mixed = deploy::compile(mixed_codes, {.input = map});
    auto levels_of = [&](std::size_t step) {
        return std::get<deploy::level_thresholds>(std::get<deploy::integer_dense_step>(mixed.steps()[step].op).stage()).levels;
    };
    CHECK(levels_of(1) == 3);
    CHECK(levels_of(2) == 15);
    deploy::rounding_audit const mixed_audit = deploy::audit(mixed_codes, mixed, x, labels, {.input = map});
    CHECK(mixed_audit.values + mixed_audit.skipped == 2 * hidden * m);
    CHECK(mixed_audit.unexplained == 0);
    CHECK(mixed_audit.argmax_disagreements_where_codes_agree == 0);
    CHECK(mixed_audit.logits_outside == 0);
}

TEST_CASE("integer levels of a mid-tread grid round-trip through the packed file, and a bad levels key is refused")
{
    std::size_t const inputs = 30, hidden = 24, classes = 4, m = 16;
    deploy::input_map const map{.scale = 0.0125f, .offset = -1.5f};
    auto model = make_model<ternary_2>(inputs, hidden, classes, 1.25f, 8);
    xt::xtensor<std::uint8_t, 2> const q = random_codes(m, inputs, 3);
    xt::xtensor<float, 2> const x = decode(q, map);
    calibrate_batch_norm(model, x, 4);
    deploy::packed_model const packed = deploy::compile(model, {.input = map});
    CHECK_FALSE(std::get<deploy::integer_dense_step>(packed.steps()[2].op).weights().odd);  // TWN: the integers -1, 0, 1
    io::archive a = deploy::to_archive(packed);
    CHECK(a.meta().at("step2.levels") == "integer");
    CHECK(a.meta().at("step1.levels") == "integer");  // SQWA's 3-bit uniform grid: mid-tread too
    CHECK(a.meta().at("step3.levels") == "integer");  // LSQ's two's-complement grid
    deploy::packed_model const again = deploy::packed_model_from_archive(a);
    CHECK_FALSE(std::get<deploy::integer_dense_step>(again.steps()[2].op).weights().odd);
    CHECK(again.forward(x) == packed.forward(x));
    a.meta()["step2.levels"] = "octal";
    CHECK_THROWS_WITH_AS((void)deploy::packed_model_from_archive(a),
                         doctest::Contains("metadata 'step2.levels' is 'octal'"), io::io_error);
}
