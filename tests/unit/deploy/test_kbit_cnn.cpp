// SPDX-License-Identifier: MIT
// CNNs with k-bit (PACT) activations lowered by deploy::compile into a deploy::packed_model, on small random
// models:
//  - the convolution step that compile makes of a conv2d - batch_norm - ReLU - PACT block: the integers of its
//    packed_kbit_conv2d against plain integer loops over the valid taps (input codes with padding classes, and
//    k-bit codes; binary and odd-level weights; odd sizes, more than 64 channels, strides and paddings), its codes
//    against its thresholds, and against the float conv2d - batch_norm - ReLU - PACT;
//  - code_max_pool against nn::max_pool2d on PACT's values;
//  - nn::cnn with PACT activations against the fake-quant model's evaluation forward (every code of every layer,
//    the argmax, the logits within the float-summation bound), with input maps of offset 0 and not;
//  - the errors of packed_kbit_conv2d, code_max_pool and packed_model steps of codes that do not chain.
// The packed file of these models is tested in test_packed_cnn_file.cpp.
#include <lowbit/deploy/code_max_pool.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_kbit_conv2d.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>

#include "../../support/argmax.hpp"
#include "../../support/conv_loops.hpp"
#include "../../support/kbit_recipe.hpp"
#include "../../support/packed_steps.hpp"

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

// The unity build compiles this file with test_kbit.cpp and test_packed_kbit_file.cpp: its helpers and test cases
// live in a namespace of their own, not the anonymous one those files share.
namespace kbit_cnn_test {

using namespace lowbit;
namespace ste = lowbit::ste;

template <int Bits>
using pact_act = nn::sequential<nn::relu, nn::quantize_activation<ste::pact<Bits>>>;

/// Shadow weights, the running statistics of a few training-mode passes, then gammas of both signs (a few zero)
/// and betas inside PACT's range, for every BatchNorm of @p model: thresholds away from the trivial ones, and
/// every code in use.
template <class Model, class X>
void randomise_batch_norms(Model& model, X const& x, std::uint32_t seed)
{
    for (int i = 0; i < 10; ++i) (void)model.forward(x, {.training = true});
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    model.for_each_leaf([&](auto& layer) {
        if constexpr (requires { layer.gamma(); layer.running_var(); }) {
            for (std::size_t j = 0; j < layer.gamma().size(); ++j) {
                float const g = u(rng);
                layer.gamma()[j] = j % 13 == 5 ? 0.0f : (g < -0.5f ? g : std::abs(g) + 0.1f);
                layer.beta()[j] = 0.5f + 0.5f * u(rng);
            }
        }
    });
}

/// PACT's codes of activations a (any shape): round(a / (alpha / n)).
template <class T>
std::vector<std::uint8_t> pact_codes(T const& a, float alpha, int bits)
{
    double const n = (1 << bits) - 1;
    std::vector<std::uint8_t> q(a.size());
    for (std::size_t i = 0; i < a.size(); ++i)
        q[i] = static_cast<std::uint8_t>(std::nearbyint(static_cast<double>(a.data()[i]) / alpha * n));
    return q;
}

/// NCHW values -> NHWC rows.
template <class T>
std::vector<T> nhwc(T const* x, std::size_t n, std::size_t c, std::size_t plane)
{
    std::vector<T> y(n * c * plane);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t ch = 0; ch < c; ++ch)
            for (std::size_t p = 0; p < plane; ++p) y[(i * plane + p) * c + ch] = x[(i * c + ch) * plane + p];
    return y;
}

/// Images [n, C, H, W] as the rows [n, C H W] of packed_model::run.
xt::xtensor<float, 2> rows_of(xt::xtensor<float, 4> const& x)
{
    xt::xtensor<float, 2> r = xt::xtensor<float, 2>::from_shape({x.shape(0), x.size() / x.shape(0)});
    std::copy(x.begin(), x.end(), r.begin());
    return r;
}

/// The number of codes of a fake-quant PACT activation ([n, C, H, W] NCHW, or [n, C]) that differ from NHWC packed
/// codes, and the largest difference.
template <std::size_t Rank>
std::pair<std::size_t, int> differing(xt::xtensor<float, Rank> const& a, float alpha, int bits,
                                      std::span<std::uint8_t const> packed)
{
    std::vector<std::uint8_t> const f = pact_codes(a, alpha, bits);
    std::vector<std::uint8_t> const fn = nhwc(f.data(), a.shape(0), a.shape(1), a.size() / (a.shape(0) * a.shape(1)));
    REQUIRE(fn.size() == packed.size());
    std::size_t d = 0;
    int worst = 0;
    for (std::size_t i = 0; i < fn.size(); ++i) {
        int const e = std::abs(static_cast<int>(fn[i]) - static_cast<int>(packed[i]));
        d += e != 0;
        worst = std::max(worst, e);
    }
    return {d, worst};
}

/// The codes of activations after a packed step.
std::span<std::uint8_t const> codes_of(deploy::activations const& a)
{
    REQUIRE(a.kind == deploy::encoding::codes);
    return {a.codes.data(), a.codes.size()};
}

using lowbit::test::argmax_row;

/// The one convolution step of @p model (lowered with @p options), which holds the conv2d - batch_norm - ReLU -
/// PACT<Bits> @p block: its geometry and thresholds, its packed_kbit_conv2d's integers on the codes it reads
/// against integer loops over @p q, the codes it writes against its thresholds, and against the float block on
/// @p block_in (what the float model's block reads). @p first: the step reads the input map's codes.
template <int Bits, class Model, class Block>
void check_conv_step(Model& model, Block& block, nn::conv2d_options const& o, xt::xtensor<float, 4> const& x,
                     xt::xtensor<float, 4> const& block_in, xt::xtensor<std::uint8_t, 4> const& q, float alpha,
                     deploy::compile_options const& options, bool first)
{
    constexpr int n_levels = (1 << Bits) - 1;
    std::size_t const n = x.shape(0), h = x.shape(2), w = x.shape(3);
    deploy::packed_model const packed = deploy::compile(model, options);
    std::vector<std::size_t> const at = test::integer_steps(packed, deploy::encoding::codes);
    REQUIRE(at.size() == 1);
    auto const& step = std::get<deploy::integer_conv_step>(packed.steps()[at[0]].op);
    CHECK(step.input() == deploy::layer_input::codes);
    kernels::binary_conv2d_shape const& s = step.shape();
    CHECK((s.channels == o.in && s.height == h && s.width == w && s.filters == o.out && s.kernel == o.kernel &&
           s.stride == o.stride && s.padding == o.padding));
    auto const& sets = std::get<std::vector<deploy::level_thresholds>>(step.stage());
    // On the input map's codes (offset -0.77: code 0 is not 0.0) each padding class has its own thresholds.
    CHECK(sets.size() == (first ? deploy::padding_classes::of(s).count() : 1));
    deploy::packed_kbit_conv2d const conv(s, step.weights(), sets);
    CHECK(conv.levels() == n_levels);

    // What the step reads: the codes q, as NHWC rows.
    xt::xtensor<float, 2> const rows = rows_of(x);
    deploy::activations const in = packed.run(rows, at[0]);
    std::vector<std::uint8_t> const qn = nhwc(q.data(), n, o.in, h * w);
    std::span<std::uint8_t const> const read = codes_of(in);
    CHECK(std::equal(read.begin(), read.end(), qn.begin(), qn.end()));

    // Integers: sum over the valid taps of code x level, in plain loops over NCHW.
    std::size_t const rows_out = n * conv.out_pixels();
    std::vector<std::int64_t> v(rows_out * o.out);
    conv.integers(in.code_view(), n, v.data(), o.out);
    std::vector<std::int64_t> const loops = test::conv_loops(
        s, step.weights(), n, [&](std::size_t i, std::size_t c, std::size_t y, std::size_t xx) { return std::int64_t{q(i, c, y, xx)}; });
    std::size_t wrong = 0;
    for (std::size_t r = 0; r < loops.size(); ++r) wrong += v[r] != loops[r];
    CHECK(wrong == 0);

    // Codes: each pixel's class's thresholds applied to v, and against the float layers (zero padding in float).
    deploy::activations const out = packed.run(rows, at[0] + 1);
    std::span<std::uint8_t const> const codes = codes_of(out);
    REQUIRE(codes.size() == rows_out * o.out);
    std::size_t off_rule = 0;
    for (std::size_t r = 0; r < rows_out; ++r) {
        deploy::level_thresholds const& t =
            first ? conv.thresholds()[conv.classes().pixel_class[r % conv.out_pixels()]] : conv.thresholds()[0];
        for (std::size_t j = 0; j < o.out; ++j) off_rule += codes[r * o.out + j] != t.code(j, v[r * o.out + j]);
    }
    CHECK(off_rule == 0);
    xt::xtensor<float, 4> const f = block.forward(block_in, {.training = false});
    auto const [d, worst] = differing(f, alpha, Bits, codes);
    // The float conv rounds its sums (the packed one is exact), so a value within rounding of a PACT step may
    // land on the next code; with random statistics that is rare, a wrong threshold or padding is not.
    CHECK(d <= 2);
    CHECK(worst <= 1);
}

/// One conv - BN - ReLU - PACT<Bits> block, lowered by compile, against integer loops and the float layers.
/// @p first: the block is the model's first layer and reads the input map's codes (padding classes); else it
/// reads PACT codes of unit 0.7 / n.
template <class P, int Bits>
void check_conv(nn::conv2d_options o, std::size_t h, std::size_t w, bool first, std::uint32_t seed)
{
    CAPTURE(o.in);
    CAPTURE(o.out);
    CAPTURE(h);
    CAPTURE(w);
    CAPTURE(o.stride);
    CAPTURE(o.padding);
    CAPTURE(first);
    CAPTURE(Bits);
    o.seed = seed;
    o.bias = true;
    float const alpha = 1.5f, alpha_in = 0.7f;
    constexpr int n_levels = (1 << Bits) - 1;
    nn::sequential block{nn::conv2d<P>(o, P{}), nn::batch_norm<4>({.channels = o.out}),
                         pact_act<Bits>{nn::relu{}, nn::quantize_activation<ste::pact<Bits>>(ste::pact<Bits>{{.alpha = alpha}})}};
    std::size_t const n = 3;
    std::mt19937 rng(seed);
    deploy::input_map const map{.scale = 0.0123f, .offset = -0.77f};
    double const unit = static_cast<double>(alpha_in) / n_levels;
    std::int64_t const max_code = first ? 255 : n_levels;
    xt::xtensor<std::uint8_t, 4> q = xt::xtensor<std::uint8_t, 4>::from_shape({n, o.in, h, w});
    xt::xtensor<float, 4> x = xt::xtensor<float, 4>::from_shape(q.shape());
    for (std::size_t i = 0; i < x.size(); ++i) {
        q.data()[i] = static_cast<std::uint8_t>(rng() % static_cast<std::uint32_t>(max_code + 1));
        x.data()[i] = first ? map.scale * static_cast<float>(q.data()[i]) + map.offset
                            : static_cast<float>(unit * q.data()[i]);
    }
    randomise_batch_norms(block, x, seed + 2);
    for (float& b : block.template layer<0>().bias()) b = 0.1f * static_cast<float>(rng() % 7) - 0.3f;
    nn::forward_context const eval{.training = false};
    if (first) {
        nn::sequential model(block, nn::flatten{});
        check_conv_step<Bits>(model, model.template layer<0>(), o, x, x, q, alpha,
                              {.input = map, .height = h, .width = w}, true);
    } else {
        // The block reads k-bit codes: an identity BatchNorm (its default statistics, gamma 1, beta 0) and a PACT
        // of alpha 0.7 before it give back the codes q of the values 0.7 q / n (the BatchNorm also fixes the
        // images' channels).
        nn::sequential model(nn::batch_norm<4>({.channels = o.in}),
                             nn::quantize_activation<ste::pact<Bits>>(ste::pact<Bits>{{.alpha = alpha_in}}), block,
                             nn::flatten{});
        xt::xtensor<float, 4> const in =
            model.template layer<1>().forward(model.template layer<0>().forward(x, eval), eval);
        check_conv_step<Bits>(model, model.template layer<2>(), o, x, in, q, alpha, {.height = h, .width = w}, false);
    }
}

using lowbit::test::kbit_recipe;
using binary_hidden_2 = kbit_recipe<ste::dorefa_weight<8>, ste::xnor_weight<>, ste::dorefa_weight<8>, 2>;
using levels_4 = kbit_recipe<ste::dorefa_weight<4>, ste::dorefa_weight<2>, ste::xnor_weight<per_tensor_t>, 4>;
using ternary_2 = kbit_recipe<ste::uniform_weight<3>, ste::twn_weight<>, ste::lsq<4, grid::signed_int>, 2>;

TEST_CASE_TEMPLATE("a lowered conv - batch_norm - ReLU - PACT block: packed_kbit_conv2d equals integer loops, and the "
                   "step the float conv - batch_norm - ReLU - PACT",
                   P, ste::xnor_weight<>, ste::dorefa_weight<2>, ste::dorefa_weight<8>, ste::twn_weight<>,
                   ste::lsq<4, grid::signed_int>)
{
    for (bool const first : {true, false}) {
        check_conv<P, 4>({.in = 3, .out = 5, .kernel = 3, .stride = 1, .padding = 1}, 5, 7, first, 11);
        check_conv<P, 2>({.in = 70, .out = 67, .kernel = 3, .stride = 2, .padding = 1}, 6, 5, first, 12);
        check_conv<P, 1>({.in = 2, .out = 3, .kernel = 2, .stride = 1, .padding = 2}, 4, 3, first, 13);
        check_conv<P, 8>({.in = 1, .out = 9, .kernel = 3, .stride = 1, .padding = 0}, 7, 9, first, 14);
    }
}

TEST_CASE("code_max_pool is nn::max_pool2d on PACT's values")
{
    for (auto const& [k, stride, h, w, c] : {std::tuple{2u, 2u, 7u, 5u, 3u}, std::tuple{3u, 2u, 9u, 8u, 70u},
                                            std::tuple{2u, 1u, 4u, 4u, 64u}}) {
        std::mt19937 rng(k + 10 * h);
        float const alpha = 2.0f;
        xt::xtensor<std::uint8_t, 4> q = xt::xtensor<std::uint8_t, 4>::from_shape({2, c, h, w});
        xt::xtensor<float, 4> x = xt::xtensor<float, 4>::from_shape(q.shape());
        for (std::size_t i = 0; i < q.size(); ++i) {
            q.data()[i] = static_cast<std::uint8_t>(rng() % 16u);
            x.data()[i] = alpha / 15.0f * static_cast<float>(q.data()[i]);
        }
        nn::max_pool2d pool({.kernel = k, .stride = stride});
        xt::xtensor<float, 4> const f = pool.forward(x, {.training = false});
        std::vector<std::uint8_t> const qn = nhwc(q.data(), 2, c, h * w);
        deploy::pool_window const win{.kernel = k, .stride = stride};
        xt::xtensor<std::uint8_t, 2> y = xt::xtensor<std::uint8_t, 2>::from_shape({2 * win.out(h) * win.out(w), c});
        deploy::code_max_pool(kernels::matrix_view<std::uint8_t>{qn.data(), 2 * h * w, c, c}, 2, h, w, win, y.data(), c);
        CHECK(f.shape(2) == win.out(h));
        CHECK(f.shape(3) == win.out(w));
        auto const [d, worst] = differing(f, alpha, 4, std::span<std::uint8_t const>(y.data(), y.size()));
        CHECK(d == 0);
        CHECK(worst == 0);
    }
    std::uint8_t y = 0;
    CHECK_THROWS_WITH_AS(deploy::code_max_pool(kernels::matrix_view<std::uint8_t>{&y, 1, 1, 1}, 1, 1, 1,
                                               {.kernel = 2, .stride = 2}, &y, 1),
                         doctest::Contains("smaller than the 2x2 window"), invalid_input);
    CHECK_THROWS_WITH_AS(deploy::code_max_pool(kernels::matrix_view<std::uint8_t>{&y, 3, 1, 1}, 1, 2, 2,
                                               {.kernel = 2, .stride = 2}, &y, 1),
                         doctest::Contains("shape mismatch: expected 4 pixel rows, got 3"), invalid_input);
}

TEST_CASE_TEMPLATE("a lowered PACT CNN agrees with the fake-quant model: every code, argmax, logits", R, binary_hidden_2,
                   levels_4, ternary_2)
{
    constexpr int bits = R::bits;
    for (bool const standardised : {false, true}) {
        CAPTURE(standardised);
        std::size_t const n = 24, size = 12, classes = 4;
        float const alpha = 1.25f;
        auto model = nn::cnn({.channels = 2, .size = size, .width1 = 5, .width2 = 70, .hidden = 33, .classes = classes,
                              .seed = 3},
                             typename R::hidden{}, typename R::first{}, typename R::last{},
                             ste::pact<bits>{{.alpha = alpha}}, nn::bias_head);
        float const mean = 0.2860f, sd = 0.3530f;
        deploy::input_map const map = standardised ? deploy::input_map{.scale = 1.0f / (255.0f * sd), .offset = -mean / sd}
                                                   : deploy::input_map{};
        std::mt19937 rng(5);
        xt::xtensor<float, 4> x = xt::xtensor<float, 4>::from_shape({n, 2, size, size});
        for (float& v : x) {
            float const p = static_cast<float>(rng() % 256u) / 255.0f;
            v = standardised ? (p - mean) / sd : p;
        }
        randomise_batch_norms(model, x, 9);
        nn::forward_context const eval{.training = false};
        xt::xtensor<float, 2> const fake = model.forward(x, eval);
        deploy::packed_model const packed = deploy::compile(model, {.input = map, .height = size, .width = size});
        CHECK(model.forward(x, eval) == fake);  // lowering leaves the model as it was
        // Every layer on the integer kernels: the images' codes, four convolutions and the hidden dense layer writing
        // k-bit codes, the logits from the last layer's integer sums.
        CHECK(test::step_kinds(packed) ==
              "nhwc input iconv>codes iconv>codes pool iconv>codes iconv>codes pool flatten int>codes int>floats");
        CHECK(packed.inputs() == 2 * size * size);
        CHECK(packed.classes() == classes);
        std::vector<std::size_t> const at = test::integer_steps(packed, deploy::encoding::codes);
        REQUIRE(at.size() == 5);
        // One set of thresholds per padding class in the first convolution where code 0 is not 0.0 (the standardised
        // map), else one; the second convolution reads PACT codes, whose 0 is 0.0.
        auto const& c0 = std::get<deploy::integer_conv_step>(packed.steps()[at[0]].op);
        auto const& c1 = std::get<deploy::integer_conv_step>(packed.steps()[at[1]].op);
        CHECK(std::get<std::vector<deploy::level_thresholds>>(c0.stage()).size() == (standardised ? 9u : 1u));
        CHECK(std::get<std::vector<deploy::level_thresholds>>(c1.stage()).size() == 1);

        xt::xtensor<float, 2> const logits = packed.forward(x);

        // Codes, layer by layer: the packed model's activations after each step that writes codes.
        auto const a1 = model.template layer<0>().forward(x, eval);
        auto const a2 = model.template layer<1>().forward(a1, eval);
        auto const a3 = model.template layer<3>().forward(model.template layer<2>().forward(a2, eval), eval);
        auto const a4 = model.template layer<4>().forward(a3, eval);
        auto const flat = model.template layer<6>().forward(model.template layer<5>().forward(a4, eval), eval);
        auto const a5 = model.template layer<9>().forward(
            model.template layer<8>().forward(model.template layer<7>().forward(flat, eval), eval), eval);
        xt::xtensor<float, 2> const rows = rows_of(x);
        std::vector<deploy::activations> traced;
        for (std::size_t const i : at) traced.push_back(packed.run(rows, i + 1));
        std::size_t d = 0;
        int worst = 0;
        auto const add = [&](std::pair<std::size_t, int> e) {
            d += e.first;
            worst = std::max(worst, e.second);
        };
        add(differing(a1, alpha, bits, codes_of(traced[0])));
        add(differing(a2, alpha, bits, codes_of(traced[1])));
        add(differing(a3, alpha, bits, codes_of(traced[2])));
        add(differing(a4, alpha, bits, codes_of(traced[3])));
        add(differing(a5, alpha, bits, codes_of(traced[4])));
        std::size_t nonzero = 0;
        for (auto const& t : traced)
            nonzero +=
                static_cast<std::size_t>(std::ranges::count_if(t.codes, [](std::uint8_t c) { return c != 0; }));
        MESSAGE("Bits " << bits << std::string(standardised ? ", standardised" : "") << ": " << d << " differing codes, "
                        << nonzero << " non-zero codes");
        CHECK(nonzero > 0);  // the codes are not all 0: the comparison tests something
        CHECK(d <= 2);       // the float model's own rounding near a PACT step, rarely; usually 0
        CHECK(worst <= 1);
        if (d != 0) continue;
        // Logits within the float-summation bound of docs/deploy.md: (K + 2) 2^-23 (a sum_k |Q_jk| + |b_j| + 2).
        auto& last = model.template layer<10>();
        std::vector<float> const wl = last.weight().values();
        typename R::last ql = last.weight().policy();
        std::vector<float> q(wl.size());
        ql.forward(wl, q);
        std::size_t const k = last.options().in;
        for (std::size_t i = 0; i < n; ++i) {
            std::vector<double> tolerance(classes);
            for (std::size_t j = 0; j < classes; ++j) {
                double s = std::abs(static_cast<double>(last.bias()[j])) + 2.0;
                for (std::size_t c = 0; c < k; ++c) s += alpha * std::abs(static_cast<double>(q[j * k + c]));
                tolerance[j] = static_cast<double>(k + 2) * std::ldexp(1.0, -23) * s;
                CHECK(std::abs(static_cast<double>(fake(i, j)) - logits(i, j)) <= tolerance[j]);
            }
            std::size_t const a = argmax_row(fake, i), b = argmax_row(logits, i);
            if (a != b) CHECK(std::abs(static_cast<double>(fake(i, a)) - fake(i, b)) <= tolerance[a] + tolerance[b]);
        }
    }
}

TEST_CASE("packed_kbit_conv2d and packed_model's k-bit convolution steps refuse what they cannot run, with clear "
          "messages")
{
    kernels::binary_conv2d_shape const s{.channels = 2, .height = 4, .width = 4, .filters = 3, .kernel = 3, .padding = 1};
    deploy::packed_weights const w{.in = 18, .out = 3, .bits = 1, .signs = std::vector<std::uint64_t>(3, 0)};
    deploy::level_thresholds const t{.levels = 3, .threshold = std::vector<std::int32_t>(9, 0),
                                     .negate = std::vector<std::uint8_t>(3, 0)};
    CHECK_THROWS_WITH_AS(deploy::packed_kbit_conv2d(s, w, {t, t}),
                         doctest::Contains("2 sets of thresholds, expected 1 or 9 (one per padding class)"), invalid_input);
    deploy::level_thresholds short_t = t;
    short_t.threshold.pop_back();
    CHECK_THROWS_WITH_AS(deploy::packed_kbit_conv2d(s, w, {short_t}),
                         doctest::Contains("8 thresholds of 3 levels for 3 filters"), invalid_input);
    deploy::packed_weights narrow = w;
    narrow.in = 17;
    CHECK_THROWS_WITH_AS(deploy::packed_kbit_conv2d(s, narrow, {t}),
                         doctest::Contains("weights of 3 x 17 for 3 filters of 18 taps"), invalid_input);
    kernels::binary_conv2d_shape tiny = s;
    tiny.height = 1;
    tiny.padding = 0;
    CHECK_THROWS_WITH_AS(deploy::packed_kbit_conv2d(tiny, w, {t}), doctest::Contains("smaller than the 3x3 kernel"),
                         invalid_input);
    deploy::packed_kbit_conv2d const conv(s, w, {t});
    std::vector<std::uint8_t> x(2 * 16 * 2, 0), y(2 * 16 * 3, 0);
    CHECK_THROWS_WITH_AS(conv.forward(kernels::matrix_view<std::uint8_t>{x.data(), 31, 2, 2}, 2, y.data(), 3),
                         doctest::Contains("shape mismatch: expected 2 x 4 x 4 pixel rows of 2 channels, got 31 rows"),
                         invalid_input);
    CHECK_THROWS_WITH_AS(conv.forward(kernels::matrix_view<std::uint8_t>{x.data(), 32, 2, 2}, 2, y.data(), 2),
                         doctest::Contains("code rows shorter than the filters"), invalid_input);

    // Steps of codes that do not chain: a k-bit convolution on the input codes, a pooling, a dense layer writing
    // codes, the logits.
    using deploy::packed_step;
    packed_step const images{deploy::nhwc_step{2, 4, 4}}, input{deploy::input_codes_step{}},
        flatten{deploy::flatten_step{}};
    packed_step const codes_conv{deploy::integer_conv_step(deploy::layer_input::codes, s, w, std::vector{t})};
    auto const pool = [](std::size_t k, std::size_t stride) {
        return packed_step{deploy::max_pool_step{{.kernel = k, .stride = stride}}};
    };
    auto const hidden = [] {
        deploy::packed_weights const dw{.in = 48, .out = 2, .bits = 1, .signs = std::vector<std::uint64_t>(2, 0)};
        deploy::level_thresholds const t2{.levels = 3, .threshold = std::vector<std::int32_t>(6, 0),
                                          .negate = std::vector<std::uint8_t>(2, 0)};
        return packed_step{deploy::integer_dense_step(deploy::layer_input::codes, dw, t2)};
    };
    auto const logits = [](std::size_t in) {
        deploy::packed_weights const lw{.in = in, .out = 2, .bits = 1, .signs = std::vector<std::uint64_t>(2, 0)};
        return packed_step{deploy::integer_dense_step(
            deploy::layer_input::codes, lw,
            deploy::affine_output{.a = 1.0, .offset = {0.0, 0.0}, .step = {1.0, 1.0}, .bias = {0.0f, 0.0f}})};
    };
    auto const chain = [](std::vector<packed_step> steps) { return deploy::packed_model(32, 2, std::move(steps)); };
    CHECK_NOTHROW(chain({images, input, codes_conv, flatten, hidden(), logits(2)}));
    CHECK_THROWS_WITH_AS(chain({images, input, codes_conv, pool(2, 2), flatten, hidden(), logits(2)}),
                         doctest::Contains("an integer dense step reads 48 features, not 12"), invalid_input);
    CHECK_THROWS_WITH_AS(chain({images, input, codes_conv, flatten, logits(48), logits(2)}),
                         doctest::Contains("the steps do not chain: an integer dense step reads codes"), invalid_input);
    CHECK_THROWS_WITH_AS(chain({images, input, codes_conv, pool(5, 1), flatten, hidden(), logits(2)}),
                         doctest::Contains("a max pooling: the 4x4 input is smaller than the 5x5 window"), invalid_input);
    CHECK_THROWS_WITH_AS(chain({images, input, codes_conv, pool(2, 0), flatten, hidden(), logits(2)}),
                         doctest::Contains("a max pooling: kernel and stride must be positive"), invalid_input);
    deploy::packed_model const cnn = chain({images, input, codes_conv, flatten, hidden(), logits(2)});
    CHECK_THROWS_WITH_AS((void)cnn.forward(xt::xtensor<float, 4>(xt::zeros<float>({1, 2, 4, 5}))),
                         doctest::Contains("expected 32 input features, got 40"), invalid_input);
}

} // namespace kbit_cnn_test
