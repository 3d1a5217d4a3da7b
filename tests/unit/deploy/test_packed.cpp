// SPDX-License-Identifier: MIT
// deploy::compile of nn::mlp's binarized MLP (dense - BatchNorm - sign, twice, then the logits layer) on
// random small models of every supported policy combination, into a deploy::packed_model:
//  - against an unfused reference (plain integer loops, the pre-activation y_j(v) in float, the model's own
//    BatchNorm layer, sign, and the logits y_j = float(v step_j) + b_j of the packed model's float output
//    stage): bit for bit, the sign bits between the steps (packed_model::run) and the logits;
//  - against the fake-quant model's evaluation forward: argmax, and logits within the float-summation bound;
//  - the packed file size of the 784-1024-1024-10 model against its float checkpoint, without training;
//  - the errors of packed_dense, integer_dense_step, packed_model and compile.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include "../../support/argmax.hpp"

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <tuple>
#include <variant>
#include <vector>

using namespace lowbit;
namespace ste = lowbit::ste;

namespace {

/// Q(w) of a dense layer as integer levels and a per-channel step, derived here independently of compile():
/// binary policies give sign(Q) and |Q|; B bits on the mid-rise grid of a per-tensor policy whose largest |Q| is
/// the top level (DoReFa's 1, max_abs clipping's bound) give the odd levels round(Q / u), u = max|Q| / (2^B - 1).
struct ref_weights {
    std::size_t in = 0, out = 0;
    bool binary = true;
    bool mid_tread = false;
    std::vector<std::int32_t> level;  // out x in
    std::vector<double> step;         // per channel
    std::vector<float> bias;
};

template <class P>
ref_weights reference_weights(nn::dense<P>& d, int bits)
{
    constexpr bool mid_tread = levels_v<P>.offset == 0.0f;  // integer levels k s (TWN, SQWA), else odd or binary
    ref_weights r;
    r.in = d.options().in;
    r.out = d.options().out;
    r.binary = bits == 1;
    r.mid_tread = mid_tread;
    std::span<float const> const evaluated = d.weight().forward_values({.training = false});
    std::vector<float> const q(evaluated.begin(), evaluated.end());
    r.level.resize(q.size());
    r.step.resize(r.out);
    double const levels = (1 << bits) - 1;
    double largest = 0.0;
    for (float const x : q) largest = std::max(largest, std::abs(static_cast<double>(x)));
    for (std::size_t j = 0; j < r.out; ++j) {
        // Mid-tread: the largest |Q| is the top level (qmax s) of the tensor.
        r.step[j] = r.binary ? std::abs(static_cast<double>(q[j * r.in]))
                             : largest / (mid_tread ? static_cast<double>(levels_v<P>.qmax) : levels);
        for (std::size_t k = 0; k < r.in; ++k) {
            float const x = q[j * r.in + k];
            r.level[j * r.in + k] = r.binary ? (x < 0.0f ? -1 : 1)
                                             : static_cast<std::int32_t>(std::nearbyint(static_cast<double>(x) / r.step[j]));
        }
    }
    auto const b = d.bias();
    r.bias.assign(b.begin(), b.end());
    return r;
}

/// v(i, j) = sum_k x(i, k) level(j, k), in plain int64 loops.
std::vector<std::int64_t> dot(std::vector<std::int32_t> const& x, std::size_t m, ref_weights const& w)
{
    std::vector<std::int64_t> v(m * w.out, 0);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < w.out; ++j) {
            std::int64_t s = 0;
            for (std::size_t k = 0; k < w.in; ++k) s += std::int64_t{x[i * w.in + k]} * w.level[j * w.in + k];
            v[i * w.out + j] = s;
        }
    return v;
}

/// BN + sign of the pre-activations y_j(v) = (a v + c sum_k level_jk) step_j (+ bias_j), by the model's layer.
std::vector<std::int32_t> bn_sign(nn::batch_norm<2>& bn, std::vector<std::int64_t> const& v, std::size_t m,
                                  ref_weights const& w, double a, double c)
{
    xt::xtensor<float, 2> y = xt::xtensor<float, 2>::from_shape({m, w.out});
    for (std::size_t j = 0; j < w.out; ++j) {
        std::int64_t sum = 0;
        for (std::size_t k = 0; k < w.in; ++k) sum += w.level[j * w.in + k];
        for (std::size_t i = 0; i < m; ++i) {
            auto const f = static_cast<float>((a * static_cast<double>(v[i * w.out + j]) + c * static_cast<double>(sum)) *
                                              w.step[j]);
            y(i, j) = w.bias.empty() ? f : f + w.bias[j];
        }
    }
    xt::xtensor<float, 2> const z = bn.forward(y, {.training = false});
    std::vector<std::int32_t> s(z.size());
    for (std::size_t i = 0; i < z.size(); ++i) s[i] = z.data()[i] < 0.0f ? -1 : 1;
    return s;
}

struct reference_result {
    std::vector<std::int32_t> h1, h2;
    xt::xtensor<float, 2> logits;
};

/// The unfused evaluation of the packed model's definition on input codes q.
template <class Model>
reference_result reference(Model& model, int bits0, int bits1, int bits2, xt::xtensor<std::uint8_t, 2> const& q,
                           deploy::input_map map)
{
    std::size_t const m = q.shape(0);
    ref_weights const w0 = reference_weights(model.template layer<0>(), bits0);
    ref_weights const w1 = reference_weights(model.template layer<3>(), bits1);
    ref_weights const w2 = reference_weights(model.template layer<6>(), bits2);
    std::vector<std::int32_t> x(q.begin(), q.end());
    reference_result r;
    r.h1 = bn_sign(model.template layer<1>(), dot(x, m, w0), m, w0, map.scale, map.offset);
    r.h2 = bn_sign(model.template layer<4>(), dot(r.h1, m, w1), m, w1, 1.0, 0.0);
    std::vector<std::int64_t> const v = dot(r.h2, m, w2);
    // The logits layer reads sign bits (unit 1, zero point 0): y_j = float(v step_j), rounded once, then + b_j in
    // float, as nn::dense adds its bias to the float product; step_j is kept in float64.
    r.logits = xt::xtensor<float, 2>::from_shape({m, w2.out});
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < w2.out; ++j) {
            auto const y = static_cast<float>(static_cast<double>(v[i * w2.out + j]) * w2.step[j]);
            r.logits(i, j) = w2.bias.empty() ? y : y + w2.bias[j];
        }
    return r;
}

/// The sign bits the packed model holds after its first @p count steps on @p x, as +-1 [rows x features].
std::vector<std::int32_t> signs_after(deploy::packed_model const& packed, xt::xtensor<float, 2> const& x,
                                      std::size_t count)
{
    deploy::activations const a = packed.run(x, count);
    REQUIRE(a.kind == deploy::encoding::signs);
    std::vector<std::int32_t> s(a.rows * a.features);
    for (std::size_t i = 0; i < a.rows; ++i)
        for (std::size_t j = 0; j < a.features; ++j)
            s[i * a.features + j] = ((a.signs[i * a.words() + j / 64] >> (j % 64)) & 1u) != 0 ? 1 : -1;
    return s;
}

/// The integer dense step at @p index of @p packed, which must be one.
deploy::integer_dense_step const& dense_step(deploy::packed_model const& packed, std::size_t index)
{
    REQUIRE(index < packed.steps().size());
    auto const* d = std::get_if<deploy::integer_dense_step>(&packed.steps()[index].op);
    REQUIRE(d != nullptr);
    return *d;
}

/// Trained-looking BatchNorm statistics: the running statistics of one batch in training mode (weights
/// through their fake quantizers), then random gammas (a quarter negative, a few zero) and betas.
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
                l.beta()[j] = 0.3f * u(rng);
            }
        }
    });
}

template <class First, class W, class Last, nn::WeightState State = nn::shadow_state>
struct recipe {
    using first = First;
    using hidden = W;
    using last = Last;
    static constexpr int bits0 = bit_width_v<First>, bits1 = bit_width_v<W>, bits2 = bit_width_v<Last>;
    using weight_state = State;  // how the method that trained the model holds weights
};

using bnn = recipe<ste::dorefa_weight<8>, ste::xnor_weight<>, ste::dorefa_weight<8>>;  // the recipe
using all_binary = recipe<ste::xnor_weight<>, ste::xnor_weight<>, ste::xnor_weight<>>;
using levels = recipe<ste::dorefa_weight<4>, ste::dorefa_weight<2>, ste::dorefa_weight<1>>;
using mixed = recipe<ste::xnor_weight<per_tensor_t>, ste::dorefa_weight<8>, ste::xnor_weight<>>;
// lowbit::quantizer, read through policy_traits like the lowbit::ste types: BinaryConnect with deterministic
// rounding (shadow weights, Q(w) forward), and stochastic rounding (SR: the weights are packed codes).
template <int Bits, class Rounding>
using even_grid = quantizer<Bits, Rounding, clip::max_abs, grid::symmetric_even>;
using bc_quantizer = recipe<even_grid<8, nearest_even_t>, quantizer<1, nearest_even_t, clip::fixed_range>,
                            even_grid<2, nearest_even_t>>;
using sr_quantizer = recipe<even_grid<8, stochastic_t>, quantizer<1, stochastic_t, clip::fixed_range>,
                            even_grid<4, stochastic_t>, nn::packed_state>;
// Mid-tread grids (integer levels): TWN on the input codes and on sign bits, SQWA's ternary quantizer last.
using ternary = recipe<ste::twn_weight<>, ste::twn_weight<>, quantizer<2, nearest_even_t, clip::max_abs>>;

template <class R>
auto make_model(std::size_t inputs, std::size_t hidden, std::size_t classes, std::uint64_t seed)
{
    return nn::mlp({.inputs = inputs, .hidden = hidden, .classes = classes, .init = nn::init::uniform_unit, .seed = seed},
                   typename R::hidden{}, typename R::first{}, typename R::last{}, ste::sign_activation{}, nn::bias_head);
}

xt::xtensor<std::uint8_t, 2> random_codes(std::size_t m, std::size_t k, std::uint64_t seed)
{
    std::mt19937_64 rng(seed);
    xt::xtensor<std::uint8_t, 2> q = xt::xtensor<std::uint8_t, 2>::from_shape({m, k});
    for (auto& c : q) c = static_cast<std::uint8_t>(rng() % 4 == 0 ? 0 : rng() & 0xFF);  // images have many zeros
    return q;
}

xt::xtensor<float, 2> decode(xt::xtensor<std::uint8_t, 2> const& q, deploy::input_map map)
{
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape(q.shape());
    for (std::size_t i = 0; i < q.size(); ++i) x.data()[i] = map.scale * static_cast<float>(q.data()[i]) + map.offset;
    return x;
}

using lowbit::test::argmax_row;

} // namespace

TEST_CASE_TEMPLATE("packed models equal the unfused reference bit for bit and the fake-quant model in argmax", R, bnn,
                   all_binary, levels, mixed, bc_quantizer, sr_quantizer, ternary)
{
    std::size_t const inputs = 50, hidden = 70, classes = 7, m = 64;
    deploy::input_map const map{.scale = 0.0125f, .offset = -1.5f};  // a standardised-looking input
    auto model = make_model<R>(inputs, hidden, classes, 17);
    std::uint32_t stream = 0;
    model.for_each_weight([&](auto& w) { w.bind(typename R::weight_state{}, stream++, 5); });
    xt::xtensor<std::uint8_t, 2> const q = random_codes(m, inputs, 4);
    xt::xtensor<float, 2> const x = decode(q, map);
    calibrate_batch_norm(model, x, 9);
    deploy::packed_model const packed = deploy::compile(model, {.input = map});
    // The input map's codes, then three integer layers: sign bits, sign bits, float logits.
    REQUIRE(packed.steps().size() == 4);
    CHECK(std::holds_alternative<deploy::input_codes_step>(packed.steps()[0].op));
    CHECK(dense_step(packed, 1).weights().bits == R::bits0);
    CHECK(dense_step(packed, 2).weights().bits == R::bits1);
    CHECK(dense_step(packed, 3).weights().bits == R::bits2);
    CHECK(dense_step(packed, 1).writes() == deploy::encoding::signs);
    CHECK(dense_step(packed, 2).writes() == deploy::encoding::signs);
    CHECK(dense_step(packed, 3).writes() == deploy::encoding::floats);
    CHECK(packed.inputs() == inputs);
    CHECK(packed.classes() == classes);

    // 1. The reference, bit for bit.
    reference_result const ref = reference(model, R::bits0, R::bits1, R::bits2, q, map);
    CHECK(signs_after(packed, x, 2) == ref.h1);
    CHECK(signs_after(packed, x, 3) == ref.h2);
    xt::xtensor<float, 2> const logits = packed.forward(x);
    REQUIRE(logits.shape() == ref.logits.shape());
    std::size_t same = 0;
    for (std::size_t i = 0; i < logits.size(); ++i)
        same += std::bit_cast<std::uint32_t>(logits.data()[i]) == std::bit_cast<std::uint32_t>(ref.logits.data()[i]);
    CHECK(same == logits.size());
    // The first step maps the floats back to the codes they were decoded from.
    deploy::activations const codes = packed.run(x, 1);
    REQUIRE(codes.kind == deploy::encoding::codes);
    CHECK(std::equal(codes.codes.begin(), codes.codes.end(), q.begin(), q.end()));
    // Batch independence: row 5 alone gives row 5 of the batch.
    xt::xtensor<float, 2> one = xt::xtensor<float, 2>::from_shape({1, inputs});
    std::copy(x.data() + 5 * inputs, x.data() + 6 * inputs, one.data());
    xt::xtensor<float, 2> const l5 = packed.forward(one);
    for (std::size_t j = 0; j < classes; ++j) CHECK(l5(0, j) == logits(5, j));

    // 2. The fake-quant model: it evaluates y by float sums, so a hidden sign may differ where BN(y) is within
    // rounding of 0 (essentially never on random data); where none differs, the logits agree within the float
    // summation bound (docs/deploy.md).
    xt::xtensor<float, 2> const fake = model.forward(x, {.training = false});
    double worst = 0.0;
    for (std::size_t i = 0; i < logits.size(); ++i)
        worst = std::max(worst, std::abs(static_cast<double>(fake.data()[i]) - logits.data()[i]));
    // |Q| <= 1 and zero biases here, so sum_k |Q_jk| + |b_j| <= hidden.
    double const bound = (hidden + 2) * std::ldexp(1.0, -23) * (static_cast<double>(hidden) + 2.0);
    CHECK(worst <= bound);
    // Argmax: equal, or a tie within that bound (an untrained per-tensor last layer, dorefa_weight<1>, has
    // equal logits for classes with equal sums, and then float noise picks).
    std::size_t agree = 0, ties = 0;
    for (std::size_t i = 0; i < m; ++i) {
        std::size_t const a = argmax_row(fake, i), b = argmax_row(logits, i);
        agree += a == b;
        ties += a != b && std::abs(static_cast<double>(fake(i, a)) - fake(i, b)) <= 2 * bound;
    }
    CHECK(agree + ties == m);
    MESSAGE("largest |fake-quant - packed| logit difference: " << worst << " (bound " << bound << ")");
}

TEST_CASE("biases on every dense layer fold into the thresholds, and compile leaves the model unchanged")
{
    using d8 = ste::dorefa_weight<8>;
    using xn = ste::xnor_weight<>;
    using act = nn::quantize_activation<ste::sign_activation>;
    nn::sequential model{nn::dense<d8>({.in = 30, .out = 65, .bias = true, .seed = 1}), nn::batch_norm<2>({.channels = 65}),
                         act{}, nn::dense<xn>({.in = 65, .out = 65, .bias = true, .seed = 2}),
                         nn::batch_norm<2>({.channels = 65}), act{},
                         nn::dense<d8>({.in = 65, .out = 3, .bias = true, .seed = 3})};
    std::mt19937_64 rng(2);
    std::uniform_real_distribution<float> u(-0.5f, 0.5f);
    model.for_each_parameter([&](nn::parameter& p) {
        if (p.kind == nn::parameter_kind::bias)
            for (float& b : p.value) b = u(rng);
    });
    xt::xtensor<std::uint8_t, 2> const q = random_codes(40, 30, 8);
    deploy::input_map const map{};
    xt::xtensor<float, 2> const x = decode(q, map);
    calibrate_batch_norm(model, x, 3);
    xt::xtensor<float, 2> const before = model.forward(x, {.training = false});
    deploy::packed_model const packed = deploy::compile(model);
    CHECK(model.forward(x, {.training = false}) == before);
    reference_result const ref = reference(model, 8, 1, 8, q, map);
    CHECK(signs_after(packed, x, 2) == ref.h1);
    CHECK(signs_after(packed, x, 3) == ref.h2);
    CHECK(packed.forward(x) == ref.logits);
}

TEST_CASE("the packed 784-1024-1024-10 model against its float checkpoint (no training needed)")
{
    // Sizes do not depend on the weights' values: untrained models show the ratio.
    auto float_bytes = [](auto& model) { return io::archive_bytes(train::to_archive(model)).size(); };
    auto bnn_model = make_model<bnn>(784, 1024, 10, 1);
    auto binary_model = make_model<all_binary>(784, 1024, 10, 1);
    std::size_t const fb = float_bytes(bnn_model);
    CHECK(fb == float_bytes(binary_model));
    std::size_t const bnn_bytes = deploy::packed_bytes(deploy::compile(bnn_model));
    std::size_t const binary_bytes = deploy::packed_bytes(deploy::compile(binary_model));
    MESSAGE("float checkpoint " << fb << " bytes; packed, 8-bit first/last layers: " << bnn_bytes << " (1/"
                                << static_cast<double>(fb) / static_cast<double>(bnn_bytes) << "); packed, all binary: "
                                << binary_bytes << " (1/" << static_cast<double>(fb) / static_cast<double>(binary_bytes) << ")");
    // The target, 1/25 of the float bytes, holds for binary weights everywhere: 1 bit per weight plus
    // 4 + 1/8 bytes of thresholds per hidden channel.
    CHECK(binary_bytes * 25 <= fb);
    // With 8-bit first and last layers the first layer's 784 x 1024 bytes alone are 1/9.3 of the float model:
    // 1/25 is out of reach by construction (docs/deploy.md); 1/7.5 is what the format gives.
    CHECK(bnn_bytes * 7 <= fb);
    CHECK(bnn_bytes > 784 * 1024);
}

TEST_CASE("packed_dense, integer_dense_step, packed_model and compile refuse what they cannot run, with clear messages")
{
    deploy::packed_weights w{.in = 10, .out = 3, .bits = 4, .codes = std::vector<std::int8_t>(30, 0)};
    deploy::sign_thresholds const t{std::vector<std::int32_t>(3, 0), std::vector<std::uint64_t>(1, 0)};
    CHECK_NOTHROW(deploy::packed_dense(deploy::layer_input::codes, w, t));
    auto bad = w;
    bad.codes[4] = 8;  // outside [-8, 7] of 4-bit levels
    CHECK_THROWS_WITH_AS(deploy::packed_dense(deploy::layer_input::codes, bad, t), doctest::Contains("code 8 is outside [-8, 7]"),
                         invalid_input);
    bad = w;
    bad.bits = 9;
    CHECK_THROWS_WITH_AS(deploy::packed_dense(deploy::layer_input::codes, bad, t), doctest::Contains("weights of 9 bits"),
                         invalid_input);
    bad = w;
    bad.codes.pop_back();
    CHECK_THROWS_WITH_AS(deploy::packed_dense(deploy::layer_input::codes, bad, t), doctest::Contains("29 codes for 3 x 10"),
                         invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_dense(deploy::layer_input::codes, w, deploy::sign_thresholds{{0, 0}, {0}}),
                         doctest::Contains("2 thresholds"), invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_dense(deploy::layer_input::codes, w, std::vector<float>(3, 0.0f)),
                         doctest::Contains("a logits layer reads sign bits"), invalid_input);
    deploy::packed_weights binary{.in = 3, .out = 2, .bits = 1, .signs = {1, 2}};
    CHECK_THROWS_WITH_AS(deploy::packed_dense(deploy::layer_input::signs, binary, std::vector<float>(2, 0.0f)),
                         doctest::Contains("2 biases and 0 scales"), invalid_input);
    deploy::packed_weights wide{.in = 40000, .out = 1, .bits = 8, .codes = std::vector<std::int8_t>(40000, 0)};
    CHECK_THROWS_WITH_AS(deploy::packed_dense(deploy::layer_input::codes, wide,
                                              deploy::sign_thresholds{{0}, {0}}),
                         doctest::Contains("could overflow the int32 sums"), invalid_input);

    // A packed model of hand-made steps: input codes, 10 -> 3 sign bits, 3 -> 2 float logits.
    deploy::affine_output const logits{.a = 1.0, .offset = {0.0, 0.0}, .step = {1.0, 1.0}, .bias = {0.0f, 0.0f}};
    deploy::packed_step const input{deploy::input_codes_step{}};
    deploy::packed_step const first{deploy::integer_dense_step(deploy::layer_input::codes, w, t)};
    deploy::packed_step const last{deploy::integer_dense_step(deploy::layer_input::signs, binary, logits)};
    CHECK_NOTHROW(deploy::packed_model(10, 2, {input, first, last}));
    CHECK_THROWS_WITH_AS(deploy::integer_dense_step(deploy::layer_input::signs, binary,
                                                    deploy::affine_output{.a = 1.0, .offset = {0.0}, .step = {1.0, 1.0},
                                                                          .bias = {0.0f, 0.0f}}),
                         doctest::Contains("the float output needs 2 offsets, steps and biases"), invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_model(10, 2, {}), doctest::Contains("at least one step"), invalid_input);
    // Steps that do not chain: the first integer layer needs the input map's codes, the second sign bits.
    CHECK_THROWS_WITH_AS(deploy::packed_model(10, 2, {first, last}), doctest::Contains("an integer dense step reads codes"),
                         invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_model(10, 2, {input, last}),
                         doctest::Contains("an integer dense step reads sign bits"), invalid_input);
    deploy::packed_step const other{deploy::integer_dense_step(
        deploy::layer_input::signs, deploy::packed_weights{.in = 4, .out = 2, .bits = 1, .signs = {1, 2}}, logits)};
    CHECK_THROWS_WITH_AS(deploy::packed_model(10, 2, {input, first, other}),
                         doctest::Contains("an integer dense step reads 4 features, not 3"), invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_model(11, 2, {input, first, last}),
                         doctest::Contains("an integer dense step reads 10 features, not 11"), invalid_input);
    // The last step must write the classes' floats.
    CHECK_THROWS_WITH_AS(deploy::packed_model(10, 2, {input, first}),
                         doctest::Contains("the last step writes 3 codes or sign bits, not 2 floats"), invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_model(10, 3, {input, first, last}),
                         doctest::Contains("the last step writes 2 floats, not 3 floats"), invalid_input);

    deploy::packed_model const m(10, 2, {input, first, last});
    CHECK_THROWS_WITH_AS((void)m.forward(xt::xtensor<float, 2>(xt::zeros<float>({2, 11}))),
                         doctest::Contains("expected 10 input features, got 11"), invalid_input);
    xt::xtensor<float, 2> nan = xt::zeros<float>({2, 10});
    nan(1, 3) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH_AS((void)m.forward(nan), doctest::Contains("1 input value(s) are NaN"), invalid_input);
    CHECK(m.forward(xt::xtensor<float, 2>(xt::zeros<float>({0, 10}))).shape(0) == 0);

    auto model = make_model<bnn>(8, 16, 3, 1);
    CHECK_THROWS_WITH_AS((void)deploy::compile(model, {.input = {.scale = -1.0f}}),
                         doctest::Contains("scale must be positive"), invalid_input);
    CHECK_THROWS_WITH_AS((void)deploy::compile(model, {.input = {.scale = 0.0f}}),
                         doctest::Contains("scale must be positive"), invalid_input);
    // A first layer so wide that its sums over 8-bit codes and 8-bit levels (255 x 255 x 40000) could leave int32.
    nn::sequential wide_model{nn::dense<ste::dorefa_weight<8>>({.in = 40000, .out = 2}), nn::batch_norm<2>({.channels = 2}),
                              nn::quantize_activation<ste::sign_activation>{},
                              nn::dense<ste::xnor_weight<>>({.in = 2, .out = 2, .bias = true})};
    CHECK_THROWS_WITH_AS((void)deploy::compile(wide_model), doctest::Contains("could overflow the int32 sums"),
                         invalid_input);

    // Odd levels in a logits layer may carry their unit per channel, but one per channel.
    deploy::packed_weights levels{.in = 3, .out = 2, .bits = 2, .codes = std::vector<std::int8_t>(6, 0), .scale = {0.5f}};
    CHECK_THROWS_WITH_AS(deploy::packed_dense(deploy::layer_input::signs, levels, std::vector<float>(2, 0.0f)),
                         doctest::Contains("2 biases and 1 scales"), invalid_input);

    // A model that evaluates with float weights has no packed form: trained with full_precision, or with
    // stochastic BinaryConnect, which evaluates with the real-valued shadow weights (Courbariaux et al.).
    auto float_trained = make_model<bnn>(8, 16, 3, 1);
    float_trained.for_each_weight([](auto& weight) { weight.bind(nn::float_state{}, 0); });
    CHECK_THROWS_WITH_AS((void)deploy::compile(float_trained),
                         doctest::Contains("did the layer evaluate with float weights"), invalid_input);
    using stochastic_bc = recipe<quantizer<1, stochastic_t, clip::fixed_range>, quantizer<1, stochastic_t, clip::fixed_range>,
                                 quantizer<1, stochastic_t, clip::fixed_range>>;
    auto stochastic = make_model<stochastic_bc>(8, 16, 3, 1);
    CHECK_THROWS_WITH_AS((void)deploy::compile(stochastic), doctest::Contains("stochastic BinaryConnect"),
                         invalid_input);
}

TEST_CASE("input_map: calibration from a batch, and codes that invert x = scale q + offset")
{
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({4, 256});
    for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(i % 256) / 255.0f;  // lowbit::data's pixels
    deploy::input_map const m = deploy::input_map::calibrate(x);
    CHECK(m.offset == 0.0f);
    CHECK(m.scale == 1.0f / 255.0f);
    for (std::size_t i = 0; i < 256; ++i) CHECK(m.code(x.data()[i]) == i);
    // lowbit-train's standardisation: (p / 255 - mean) / sd is code p of scale 1 / (255 sd), offset -mean / sd.
    float const mean = 0.2860f, sd = 0.3530f;
    deploy::input_map const s{.scale = static_cast<float>(1.0 / (255.0 * sd)), .offset = -mean / sd};
    for (int p = 0; p < 256; ++p) CHECK(s.code((static_cast<float>(p) / 255.0f - mean) / sd) == p);
    CHECK(m.code(-3.0f) == 0);
    CHECK(m.code(7.0f) == 255);
    CHECK_THROWS_AS((void)deploy::input_map::calibrate(xt::xtensor<float, 2>::from_shape({0, 3})), invalid_input);
    x(0, 0) = std::numeric_limits<float>::infinity();
    CHECK_THROWS_AS((void)deploy::input_map::calibrate(x), invalid_input);
}

TEST_CASE("packed_dense::integers equals plain integer loops for each input and weight format")
{
    std::mt19937_64 rng(21);
    std::size_t const m = 7, in = 150, out = 70;
    for (int const bits : {1, 2, 5, 8}) {
        for (auto const input : {deploy::layer_input::codes, deploy::layer_input::signs}) {
            CAPTURE(bits);
            CAPTURE(static_cast<int>(input));
            deploy::packed_weights w{.in = in, .out = out, .bits = bits};
            if (bits == 1) {
                w.signs.resize(out * w.words());
                for (auto& word : w.signs) word = rng();
            } else {
                w.codes.resize(out * in);
                for (auto& c : w.codes) c = static_cast<std::int8_t>(static_cast<int>(rng() % (1u << bits)) - (1 << (bits - 1)));
            }
            deploy::packed_dense const layer(input, w,
                                             deploy::sign_thresholds{std::vector<std::int32_t>(out, 0),
                                                                     std::vector<std::uint64_t>(2, 0)});
            std::vector<std::int32_t> x(m * in);
            std::vector<std::int64_t> got(m * out), want(m * out, 0);
            if (input == deploy::layer_input::codes) {
                std::vector<std::uint8_t> q(m * in);
                for (std::size_t i = 0; i < q.size(); ++i) x[i] = q[i] = static_cast<std::uint8_t>(rng());
                layer.integers(kernels::matrix_view<std::uint8_t>{q.data(), m, in, in}, got.data(), out);
            } else {
                std::size_t const words = kernels::words_for_bits(in);
                std::vector<std::uint64_t> b(m * words, 0);
                for (std::size_t i = 0; i < m; ++i)
                    for (std::size_t k = 0; k < in; ++k) {
                        bool const plus = (rng() & 1u) != 0;
                        x[i * in + k] = plus ? 1 : -1;
                        if (plus) b[i * words + k / 64] |= std::uint64_t{1} << (k % 64);
                    }
                layer.integers(kernels::bit_matrix_view{b.data(), m, in, words}, got.data(), out);
            }
            for (std::size_t i = 0; i < m; ++i)
                for (std::size_t j = 0; j < out; ++j)
                    for (std::size_t k = 0; k < in; ++k) want[i * out + j] += std::int64_t{x[i * in + k]} * w.level(j, k);
            CHECK(got == want);
        }
    }
}
