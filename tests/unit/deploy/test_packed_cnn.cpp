// SPDX-License-Identifier: MIT
// deploy::packed_conv2d, sign_max_pool and binarized CNNs lowered by deploy::compile into a deploy::packed_model,
// on small random models:
//  - the padding classes of a zero-padded convolution;
//  - the convolution step that compile makes of a conv2d - batch_norm - sign block: the integers of its
//    packed_conv2d against plain integer loops over the valid taps (sign bits and input codes, binary and
//    odd-level weights, odd sizes, more than 64 channels, strides and paddings), and the sign bits the step writes
//    against the float model's own conv2d - batch_norm - sign;
//  - max pooling on bits against nn::max_pool2d on +-1;
//  - nn::cnn's binarized CNN of several policy combinations against the fake-quant model's evaluation forward
//    (every hidden sign, the argmax, the logits within the float-summation bound), with input maps of offset 0
//    and not;
//  - the errors of packed_conv2d, of packed_model steps that do not chain, and of compile on CNNs it cannot
//    lower.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_conv2d.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/deploy/sign_max_pool.hpp>
#include <lowbit/kernels/binary_conv2d.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>

#include "../../support/argmax.hpp"
#include "../../support/conv_loops.hpp"
#include "../../support/packed_steps.hpp"

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

// The unity build compiles this file with test_packed_cnn_file.cpp: its helpers and test cases live in a namespace of
// their own, not an anonymous one shared with the other file.
namespace packed_cnn_test {

using namespace lowbit;
namespace ste = lowbit::ste;
using sign_act = nn::quantize_activation<ste::sign_activation>;

/// Shadow weights, running statistics from a few training-mode passes, then gamma of both signs and a beta, for every
/// BatchNorm of @p model: thresholds away from the trivial ones.
template <class Model, class X>
void randomise_batch_norms(Model& model, X const& x, std::uint32_t seed)
{
    for (int i = 0; i < 20; ++i) (void)model.forward(x, {.training = true});
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> g(-1.5f, 1.5f), b(-0.4f, 0.4f);
    model.for_each_leaf([&](auto& layer) {
        if constexpr (requires { layer.gamma(); layer.running_var(); }) {
            for (float& v : layer.gamma()) v = g(rng);
            for (float& v : layer.beta()) v = b(rng);
        }
    });
}

xt::xtensor<float, 4> random_signs(std::size_t n, std::size_t c, std::size_t h, std::size_t w, std::uint32_t seed)
{
    std::mt19937 rng(seed);
    xt::xtensor<float, 4> x = xt::xtensor<float, 4>::from_shape({n, c, h, w});
    for (float& v : x) v = (rng() & 1u) != 0 ? 1.0f : -1.0f;
    return x;
}

/// Images [n, C, H, W] as the rows [n, C H W] of packed_model::run.
xt::xtensor<float, 2> rows_of(xt::xtensor<float, 4> const& x)
{
    xt::xtensor<float, 2> r = xt::xtensor<float, 2>::from_shape({x.shape(0), x.size() / x.shape(0)});
    std::copy(x.begin(), x.end(), r.begin());
    return r;
}

/// NCHW floats -> NHWC sign-bit rows (bit 1 = +1).
std::vector<std::uint64_t> nhwc_bits(xt::xtensor<float, 4> const& x)
{
    std::size_t const n = x.shape(0), c = x.shape(1), plane = x.shape(2) * x.shape(3);
    std::vector<std::uint64_t> b(n * plane * kernels::words_for_bits(c), 0);
    kernels::pack_images_sign(x.data(), n, c, x.shape(2), x.shape(3), b.data(), kernels::words_for_bits(c));
    return b;
}

/// NCHW +-1 floats (a sign activation's output) against NHWC bit rows: the number of differing signs.
std::size_t differing(xt::xtensor<float, 4> const& f, xt::xtensor<std::uint64_t, 2> const& bits)
{
    std::size_t const n = f.shape(0), c = f.shape(1), plane = f.shape(2) * f.shape(3), words = bits.shape(1);
    REQUIRE(bits.shape(0) == n * plane);
    std::size_t d = 0;
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t ch = 0; ch < c; ++ch)
            for (std::size_t p = 0; p < plane; ++p) {
                bool const plus = f.data()[(i * c + ch) * plane + p] > 0.0f;
                bool const bit = ((bits.data()[(i * plane + p) * words + ch / 64] >> (ch % 64)) & 1u) != 0;
                d += plus != bit;
            }
    return d;
}

/// The +-1 floats of a sign layer of the float model ([n, C, H, W] NCHW, or [n, C]) against the packed model's
/// activations after the step that writes those signs (NHWC rows of sign bits): the number of differing signs.
template <std::size_t Rank>
std::size_t differing(xt::xtensor<float, Rank> const& f, deploy::activations const& a)
{
    std::size_t const n = f.shape(0), c = f.shape(1), plane = f.size() / (n * c), words = a.words();
    REQUIRE(a.kind == deploy::encoding::signs);
    REQUIRE(a.rows == n * plane);
    REQUIRE(a.features == c);
    std::size_t d = 0;
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t ch = 0; ch < c; ++ch)
            for (std::size_t p = 0; p < plane; ++p) {
                bool const plus = f.data()[(i * c + ch) * plane + p] > 0.0f;
                bool const bit = ((a.signs[(i * plane + p) * words + ch / 64] >> (ch % 64)) & 1u) != 0;
                d += plus != bit;
            }
    return d;
}


using lowbit::test::argmax_row;

/// The one convolution step of @p model (lowered with @p options), which holds the conv2d - batch_norm @p block and
/// a sign after it: its geometry, its packed_conv2d's integers on the activations it reads against integer loops
/// over @p q (the input codes, or the signs of @p x), and the sign bits it writes against the float block on
/// @p block_in (what the float model's block reads).
template <class Model, class Block>
void check_conv_step(Model& model, Block& block, nn::conv2d_options const& o, xt::xtensor<float, 4> const& x,
                     xt::xtensor<float, 4> const& block_in, xt::xtensor<std::uint8_t, 4> const& q,
                     deploy::compile_options const& options, bool codes)
{
    std::size_t const n = x.shape(0), h = x.shape(2), w = x.shape(3);
    deploy::packed_model const packed = deploy::compile(model, options);
    std::vector<std::size_t> const at = test::integer_steps(packed, deploy::encoding::signs);
    REQUIRE(at.size() == 1);
    auto const& step = std::get<deploy::integer_conv_step>(packed.steps()[at[0]].op);
    CHECK(step.input() == (codes ? deploy::layer_input::codes : deploy::layer_input::signs));
    kernels::binary_conv2d_shape const& s = step.shape();
    CHECK((s.channels == o.in && s.height == h && s.width == w && s.filters == o.out && s.kernel == o.kernel &&
           s.stride == o.stride && s.padding == o.padding));
    auto const& sets = std::get<std::vector<deploy::sign_thresholds>>(step.stage());
    // On the input map's codes (offset -0.77: code 0 is not 0.0) each padding class has its own thresholds.
    CHECK(sets.size() == (codes ? deploy::padding_classes::of(s).count() : 1));
    deploy::packed_conv2d const conv(step.input(), s, step.weights(), sets);

    // What the step reads: the input map's codes of x, or the signs of x, as NHWC rows.
    xt::xtensor<float, 2> const rows = rows_of(x);
    deploy::activations const in = packed.run(rows, at[0]);
    if (codes) {
        REQUIRE(in.kind == deploy::encoding::codes);
        std::size_t off = 0;
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t c = 0; c < o.in; ++c)
                for (std::size_t p = 0; p < h * w; ++p)
                    off += in.codes[(i * h * w + p) * o.in + c] != q.data()[(i * o.in + c) * h * w + p];
        CHECK(off == 0);
    } else {
        CHECK(differing(x, in) == 0);
    }

    // Integers: sum over the valid taps of input x level, in plain loops over NCHW.
    std::size_t const rows_out = n * conv.out_pixels();
    std::vector<std::int64_t> v(rows_out * o.out);
    if (codes)
        conv.integers(in.code_view(), n, v.data(), o.out);
    else
        conv.integers(in.sign_view(), n, v.data(), o.out);
    std::vector<std::int64_t> const loops =
        test::conv_loops(s, step.weights(), n, [&](std::size_t i, std::size_t c, std::size_t y, std::size_t xx) {
            std::size_t const i_at = ((i * o.in + c) * h + y) * w + xx;
            return codes ? std::int64_t{q.data()[i_at]} : (x.data()[i_at] > 0.0f ? std::int64_t{1} : std::int64_t{-1});
        });
    std::size_t wrong = 0;
    for (std::size_t r = 0; r < loops.size(); ++r) wrong += v[r] != loops[r];
    CHECK(wrong == 0);

    // Sign bits against the float layers: conv2d (zero padding in float), batch_norm, sign(0) = +1.
    xt::xtensor<float, 4> f = block.forward(block_in, {.training = false});
    for (float& e : f) e = e < 0.0f ? -1.0f : 1.0f;
    // The float conv rounds its sums (the packed one is exact), so a BatchNorm output within rounding of 0 may
    // land on the other side; with random statistics that is rare, a wrong threshold or padding is not.
    CHECK(differing(f, packed.run(rows, at[0] + 1)) <= 1);
}

/// One conv - BN - sign block with random statistics, lowered by compile on the input map's codes or on sign
/// bits, against the float layers and integer loops.
template <class P>
void check_conv(P policy, nn::conv2d_options o, std::size_t h, std::size_t w, bool codes, std::uint32_t seed)
{
    CAPTURE(o.in);
    CAPTURE(o.out);
    CAPTURE(h);
    CAPTURE(w);
    CAPTURE(o.stride);
    CAPTURE(o.padding);
    CAPTURE(codes);
    o.seed = seed;
    o.bias = false;
    nn::sequential block{nn::conv2d<P>(o, policy), nn::batch_norm<4>({.channels = o.out})};
    std::size_t const n = 3;
    std::mt19937 rng(seed);
    deploy::input_map const map{.scale = 0.0123f, .offset = -0.77f};
    xt::xtensor<float, 4> x = random_signs(n, o.in, h, w, seed + 1);
    xt::xtensor<std::uint8_t, 4> q = xt::xtensor<std::uint8_t, 4>::from_shape(x.shape());
    if (codes) {
        for (std::size_t i = 0; i < x.size(); ++i) {
            q.data()[i] = static_cast<std::uint8_t>(rng() % 256u);
            x.data()[i] = map.scale * static_cast<float>(q.data()[i]) + map.offset;
        }
    }
    randomise_batch_norms(block, x, seed + 2);
    nn::forward_context const eval{.training = false};
    if (codes) {
        // The block is the model's first layer: it reads the input map's codes.
        nn::sequential model(block, sign_act{}, nn::flatten{});
        check_conv_step(model, model.template layer<0>(), o, x, x, q, {.input = map, .height = h, .width = w}, true);
    } else {
        // The block reads sign bits: an identity BatchNorm (its default statistics, gamma 1, beta 0) and a sign
        // before it turn the +-1 images into sign bits (the BatchNorm also fixes the images' channels).
        nn::sequential model(nn::batch_norm<4>({.channels = o.in}), sign_act{}, block, sign_act{}, nn::flatten{});
        xt::xtensor<float, 4> const in =
            model.template layer<1>().forward(model.template layer<0>().forward(x, eval), eval);
        check_conv_step(model, model.template layer<2>(), o, x, in, q, {.height = h, .width = w}, false);
    }
}

template <class First, class W, class Last>
struct policy_set {
    using first = First;
    using hidden = W;
    using last = Last;
};
using bnn_cnn = policy_set<ste::dorefa_weight<8>, ste::xnor_weight<>, ste::dorefa_weight<8>>;
using all_binary = policy_set<ste::xnor_weight<>, ste::xnor_weight<>, ste::xnor_weight<>>;
using mixed = policy_set<ste::dorefa_weight<1>, ste::dorefa_weight<2>, ste::dorefa_weight<4>>;
// Mid-tread grids: integer levels (ternary TWN convolutions on sign bits, SQWA's 3-bit uniform grid first).
using ternary_cnn = policy_set<ste::uniform_weight<3>, ste::twn_weight<>, ste::uniform_weight<2>>;


TEST_CASE("padding_classes: the taps inside the image, per output pixel")
{
    kernels::binary_conv2d_shape const s{.channels = 1, .height = 5, .width = 7, .filters = 1, .kernel = 3, .padding = 1};
    deploy::padding_classes const c = deploy::padding_classes::of(s);
    CHECK(c.count() == 9);  // interior, 4 edges, 4 corners
    REQUIRE(c.pixel_class.size() == 35);
    deploy::padding_classes::taps const corner = c.valid[c.pixel_class[0]];
    CHECK(corner.y0 == 1);
    CHECK(corner.x0 == 1);
    CHECK(corner.y1 == 3);
    CHECK(corner.x1 == 3);
    deploy::padding_classes::taps const inner = c.valid[c.pixel_class[7 + 1]];
    CHECK((inner.y0 == 0 && inner.y1 == 3 && inner.x0 == 0 && inner.x1 == 3));
    CHECK(deploy::padding_classes::of({.channels = 1, .height = 5, .width = 7, .filters = 1, .kernel = 3}).count() == 1);
}

TEST_CASE_TEMPLATE("a lowered conv - batch_norm - sign block: packed_conv2d equals integer loops, and the step the float "
                   "conv - batch_norm - sign",
                   P, ste::xnor_weight<>, ste::dorefa_weight<1>, ste::dorefa_weight<2>, ste::dorefa_weight<8>,
                   ste::twn_weight<>, ste::uniform_weight<3>)
{
    for (bool const codes : {false, true}) {
        check_conv(P{}, {.in = 3, .out = 5, .kernel = 3, .stride = 1, .padding = 1}, 5, 7, codes, 11);
        check_conv(P{}, {.in = 70, .out = 67, .kernel = 3, .stride = 2, .padding = 1}, 6, 5, codes, 12);
        check_conv(P{}, {.in = 2, .out = 3, .kernel = 2, .stride = 1, .padding = 2}, 4, 3, codes, 13);
        check_conv(P{}, {.in = 1, .out = 9, .kernel = 3, .stride = 1, .padding = 0}, 7, 9, codes, 14);
    }
}

TEST_CASE("sign_max_pool is nn::max_pool2d on +-1 values")
{
    for (auto const& [k, stride, h, w, c] : {std::tuple{2u, 2u, 7u, 5u, 3u}, std::tuple{3u, 2u, 9u, 8u, 70u},
                                            std::tuple{2u, 1u, 4u, 4u, 64u}}) {
        xt::xtensor<float, 4> const x = random_signs(2, c, h, w, k + 10 * h);
        nn::max_pool2d pool({.kernel = k, .stride = stride});
        xt::xtensor<float, 4> const f = pool.forward(x, {.training = false});
        std::vector<std::uint64_t> const xb = nhwc_bits(x);
        std::size_t const words = kernels::words_for_bits(c);
        deploy::pool_window const win{.kernel = k, .stride = stride};
        xt::xtensor<std::uint64_t, 2> y = xt::xtensor<std::uint64_t, 2>::from_shape({2 * win.out(h) * win.out(w), words});
        deploy::sign_max_pool(kernels::bit_matrix_view{xb.data(), 2 * h * w, c, words}, 2, h, w, win, y.data(), words);
        CHECK(f.shape(2) == win.out(h));
        CHECK(f.shape(3) == win.out(w));
        CHECK(differing(f, y) == 0);
    }
    std::uint64_t y = 0;
    CHECK_THROWS_WITH_AS(deploy::sign_max_pool(kernels::bit_matrix_view{&y, 1, 1, 1}, 1, 1, 1, {.kernel = 2, .stride = 2},
                                               &y, 1),
                         doctest::Contains("smaller than the 2x2 window"), invalid_input);
}

TEST_CASE_TEMPLATE("a lowered binarized CNN agrees with the fake-quant model: every hidden sign, argmax, logits", R,
                   bnn_cnn, all_binary, mixed, ternary_cnn)
{
    for (bool const standardised : {false, true}) {
        CAPTURE(standardised);
        std::size_t const n = 24, size = 12;
        auto model = nn::cnn({.channels = 2, .size = size, .width1 = 5, .width2 = 70, .hidden = 33, .classes = 4, .seed = 3},
                             typename R::hidden{}, typename R::first{}, typename R::last{}, ste::sign_activation{},
                             nn::bias_head);
        // Images p / 255, or lowbit-train's standardisation (p / 255 - mean) / sd with its input map.
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
        deploy::packed_model const packed = deploy::compile(model, {.input = map, .height = size, .width = size});
        // Every layer on the integer kernels: the images' codes, four convolutions and the hidden dense layer writing
        // sign bits, the logits from the last layer's integer sums.
        CHECK(test::step_kinds(packed) ==
              "nhwc input iconv>signs iconv>signs pool iconv>signs iconv>signs pool flatten int>signs int>floats");
        CHECK(packed.inputs() == 2 * size * size);
        CHECK(packed.classes() == 4);
        std::vector<std::size_t> const at = test::integer_steps(packed, deploy::encoding::signs);
        REQUIRE(at.size() == 5);
        // The first convolution reads the input codes: one set of thresholds per padding class where code 0 is not
        // 0.0 (the standardised map), else one; the second reads sign bits, whose padded taps are 0 in both models.
        auto const& c0 = std::get<deploy::integer_conv_step>(packed.steps()[at[0]].op);
        auto const& c1 = std::get<deploy::integer_conv_step>(packed.steps()[at[1]].op);
        CHECK(std::get<std::vector<deploy::sign_thresholds>>(c0.stage()).size() == (standardised ? 9u : 1u));
        CHECK(std::get<std::vector<deploy::sign_thresholds>>(c1.stage()).size() == 1);

        nn::forward_context const eval{.training = false};
        xt::xtensor<float, 2> const fake = model.forward(x, eval);
        xt::xtensor<float, 2> const logits = packed.forward(x);

        // Hidden signs, layer by layer: the packed model's activations after each step that writes sign bits.
        auto const a1 = model.template layer<0>().forward(x, eval);
        auto const a2 = model.template layer<1>().forward(a1, eval);
        auto const a3 = model.template layer<3>().forward(model.template layer<2>().forward(a2, eval), eval);
        auto const a4 = model.template layer<4>().forward(a3, eval);
        auto const flat = model.template layer<6>().forward(model.template layer<5>().forward(a4, eval), eval);
        auto const a5 = model.template layer<9>().forward(
            model.template layer<8>().forward(model.template layer<7>().forward(flat, eval), eval), eval);
        xt::xtensor<float, 2> const rows = rows_of(x);
        std::size_t const d = differing(a1, packed.run(rows, at[0] + 1)) + differing(a2, packed.run(rows, at[1] + 1)) +
                              differing(a3, packed.run(rows, at[2] + 1)) + differing(a4, packed.run(rows, at[3] + 1)) +
                              differing(a5, packed.run(rows, at[4] + 1));
        CHECK(d <= 2);  // the float model's own rounding near a BatchNorm output of 0, rarely; usually 0
        if (d != 0) continue;
        // Logits within the float-summation bound of docs/deploy.md: (K + 2) 2^-23 (sum_k |Q_jk| + |b_j| + 2).
        auto& last = model.template layer<10>();
        std::vector<float> const wl = last.weight().values();
        typename R::last ql = last.weight().policy();
        std::vector<float> q(wl.size());
        ql.forward(wl, q);
        std::size_t const k = last.options().in;
        std::vector<double> tolerance(4);
        for (std::size_t j = 0; j < 4; ++j) {
            double s = std::abs(static_cast<double>(last.bias()[j])) + 2.0;
            for (std::size_t c = 0; c < k; ++c) s += std::abs(static_cast<double>(q[j * k + c]));
            tolerance[j] = static_cast<double>(k + 2) * std::ldexp(1.0, -23) * s;
        }
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t j = 0; j < 4; ++j)
                CHECK(std::abs(static_cast<double>(fake(i, j)) - logits(i, j)) <= tolerance[j]);
            // The same class, unless the fake-quant model's two best logits are within the tolerance of each
            // other (an untrained random model has such near-ties; the trained one in test_deploy_cnn_fashion
            // must agree on every image).
            std::size_t const a = argmax_row(fake, i), b = argmax_row(logits, i);
            if (a != b) CHECK(std::abs(static_cast<double>(fake(i, a)) - fake(i, b)) <= tolerance[a] + tolerance[b]);
        }
    }
}

TEST_CASE("packed_conv2d, packed_model's convolution steps and compile refuse what they cannot run, with clear "
          "messages")
{
    kernels::binary_conv2d_shape const s{.channels = 2, .height = 4, .width = 4, .filters = 3, .kernel = 3, .padding = 1};
    deploy::packed_weights w{.in = 18, .out = 3, .bits = 1, .signs = std::vector<std::uint64_t>(3, 0)};
    deploy::sign_thresholds const t{{0, 0, 0}, {0}};
    CHECK_THROWS_WITH_AS(deploy::packed_conv2d(deploy::layer_input::codes, s, w, {t}),
                         doctest::Contains("1 sets of thresholds, expected 9 (one per padding class)"), invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_conv2d(deploy::layer_input::signs, s, w, {t, t}),
                         doctest::Contains("2 sets of thresholds, expected 1"), invalid_input);
    deploy::packed_weights narrow = w;
    narrow.in = 17;
    CHECK_THROWS_WITH_AS(deploy::packed_conv2d(deploy::layer_input::signs, s, narrow, {t}),
                         doctest::Contains("weights of 3 x 17 for 3 filters of 18 taps"), invalid_input);
    deploy::packed_weights codes{.in = 18, .out = 3, .bits = 4, .codes = std::vector<std::int8_t>(54, 9)};
    CHECK_THROWS_WITH_AS(deploy::packed_conv2d(deploy::layer_input::signs, s, codes, {t}),
                         doctest::Contains("packed_conv2d: code 9 is outside [-8, 7]"), invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_conv2d(deploy::layer_input::signs, {.channels = 2, .height = 1, .width = 1,
                                                                            .filters = 3, .kernel = 3},
                                               w, {t}),
                         doctest::Contains("smaller than the 3x3 kernel"), invalid_input);

    // Steps that do not chain: the convolutions must read what the step before writes.
    using deploy::packed_step;
    packed_step const hidden{deploy::integer_conv_step(deploy::layer_input::signs, s, w, std::vector{t})};
    packed_step const first{deploy::integer_conv_step(
        deploy::layer_input::codes, {.channels = 1, .height = 4, .width = 4, .filters = 2, .kernel = 3, .padding = 1},
        deploy::packed_weights{.in = 9, .out = 2, .bits = 8, .codes = std::vector<std::int8_t>(18, 1)},
        std::vector<deploy::sign_thresholds>(9, deploy::sign_thresholds{{0, 0}, {0}}))};
    auto const logits = [](std::size_t in) {
        return packed_step{deploy::integer_dense_step(
            deploy::layer_input::signs,
            deploy::packed_weights{.in = in, .out = 2, .bits = 1, .signs = std::vector<std::uint64_t>(2, 0)},
            deploy::affine_output{.a = 1.0, .offset = {0.0, 0.0}, .step = {1.0, 1.0}, .bias = {0.0f, 0.0f}})};
    };
    packed_step const images{deploy::nhwc_step{1, 4, 4}}, input{deploy::input_codes_step{}},
        flatten{deploy::flatten_step{}};
    auto const chain = [](std::vector<packed_step> steps) { return deploy::packed_model(16, 2, std::move(steps)); };
    CHECK_THROWS_WITH_AS(chain({images, input, hidden, flatten, logits(48)}),
                         doctest::Contains("the steps do not chain: an integer convolution reads sign bits"), invalid_input);
    CHECK_THROWS_WITH_AS(chain({images, input, first, first, flatten, logits(32)}),
                         doctest::Contains("the steps do not chain: an integer convolution reads codes"), invalid_input);
    CHECK_THROWS_WITH_AS(chain({images, input, first, flatten, logits(48)}),
                         doctest::Contains("an integer dense step reads 48 features, not 32"), invalid_input);
    CHECK_THROWS_WITH_AS(chain({images, input, first, logits(32)}),
                         doctest::Contains("an integer dense step reads flat rows (flatten first)"), invalid_input);
    CHECK_THROWS_WITH_AS(chain({packed_step{deploy::nhwc_step{2, 4, 4}}, input, first, flatten, logits(32)}),
                         doctest::Contains("an NHWC step of 2x4x4 images reads 16 flat features"), invalid_input);
    deploy::packed_model const m = chain({images, input, first, flatten, logits(32)});
    CHECK(m.forward(xt::xtensor<float, 4>(xt::zeros<float>({3, 1, 4, 4}))).shape(0) == 3);
    CHECK_THROWS_WITH_AS((void)m.forward(xt::xtensor<float, 4>(xt::zeros<float>({1, 1, 4, 5}))),
                         doctest::Contains("expected 16 input features, got 20"), invalid_input);

    // compile on nn::cnn: an image size that does not give the dense layer's width, a pooling window larger than
    // its feature map, a bad input map, NaN images.
    auto model = nn::cnn({.size = 8, .width1 = 4, .width2 = 4, .hidden = 8, .classes = 2}, ste::xnor_weight<>{},
                         ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{}, nn::bias_head);
    deploy::packed_model const packed = deploy::compile(model, {.height = 8, .width = 8});
    CHECK(packed.inputs() == 64);
    CHECK_THROWS_WITH_AS((void)deploy::compile(model, {.height = 12, .width = 12}),
                         doctest::Contains("(dense) reads 16 features, but the layer before writes 36"), invalid_input);
    CHECK_THROWS_WITH_AS((void)deploy::compile(model, {.height = 2, .width = 2}),
                         doctest::Contains("the 1x1 input is smaller than the 2x2 window"), invalid_input);
    CHECK_THROWS_WITH_AS((void)deploy::compile(model, {.input = {.scale = -1.0f}, .height = 8, .width = 8}),
                         doctest::Contains("scale must be positive"), invalid_input);
    xt::xtensor<float, 4> nan = xt::zeros<float>({2, 1, 8, 8});
    nan(1, 0, 3, 4) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH_AS((void)packed.forward(nan), doctest::Contains("NaN"), invalid_input);

    // Convolutions that do not fit: channels that do not chain, a kernel larger than the padded image, and input
    // codes x 8-bit levels over 36864 taps, whose sums could leave int32 (255 x 255 x 36864 > 2^31).
    using conv = nn::conv2d<ste::xnor_weight<>>;
    nn::sequential channels(conv({.in = 1, .out = 4, .kernel = 3, .padding = 1}), nn::batch_norm<4>({.channels = 4}),
                            sign_act{}, conv({.in = 3, .out = 4, .kernel = 3, .padding = 1}), nn::flatten{},
                            nn::dense<ste::xnor_weight<>>({.in = 64, .out = 2}));
    CHECK_THROWS_WITH_AS((void)deploy::compile(channels, {.height = 4, .width = 4}),
                         doctest::Contains("(conv2d) reads 3 channels, but the layer before writes 4"), invalid_input);
    nn::sequential large(conv({.in = 1, .out = 4, .kernel = 5}), nn::flatten{},
                         nn::dense<ste::xnor_weight<>>({.in = 4, .out = 2}));
    CHECK_THROWS_WITH_AS((void)deploy::compile(large, {.height = 4, .width = 4}),
                         doctest::Contains("(conv2d)'s 4x4 input is smaller than its kernel"), invalid_input);
    nn::sequential wide(nn::conv2d<ste::dorefa_weight<8>>({.in = 4096, .out = 1, .kernel = 3, .padding = 1}),
                        nn::batch_norm<4>({.channels = 1}), sign_act{}, nn::flatten{},
                        nn::dense<ste::xnor_weight<>>({.in = 9, .out = 2}));
    CHECK_THROWS_WITH_AS((void)deploy::compile(wide, {.height = 3, .width = 3}),
                         doctest::Contains("36864 inputs of 8-bit weights could overflow the int32 sums"), invalid_input);
}

} // namespace packed_cnn_test
