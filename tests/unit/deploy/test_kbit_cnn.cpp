// SPDX-License-Identifier: MIT
// The CNN with k-bit (PACT) activations in the deploy path, on small random models:
//  - a packed_kbit_conv2d lowered by compile()'s own code: its integers against plain integer loops over the
//    valid taps (input codes with padding classes, and k-bit codes; binary and odd-level weights; odd sizes,
//    more than 64 channels, strides and paddings), and its codes against the float conv2d - batch_norm -
//    ReLU - PACT;
//  - code_max_pool against nn::max_pool2d on PACT's values;
//  - whole compiled CNNs against the fake-quant model's evaluation forward (every code of every layer, the
//    argmax, the logits within the float-summation bound), with input maps of offset 0 and not;
//  - the errors of packed_kbit_conv2d, code_max_pool and packed_kbit_cnn;
//  - the packed k-bit CNN file: a bit-exact round trip, the kind detection, and one clear io_error naming the
//    file for each problem (truncated, corrupt, another kind, unsupported version, inconsistent entries).
#include <lowbit/deploy/code_max_pool.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_cnn_file.hpp>
#include <lowbit/deploy/packed_kbit_cnn.hpp>
#include <lowbit/deploy/packed_kbit_cnn_file.hpp>
#include <lowbit/deploy/packed_kbit_conv2d.hpp>
#include <lowbit/deploy/packed_kbit_file.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>
#include <lowbit/train/checkpoint.hpp>

#include "../../support/conv_loops.hpp"
#include "../../support/file_problem.hpp"
#include "../../support/temp_dir.hpp"

#include "../../support/argmax.hpp"

#include "../../support/kbit_recipe.hpp"
#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <tuple>
#include <vector>

using namespace lowbit;
namespace ste = lowbit::ste;
using lowbit::test::contains;
using lowbit::test::problem;

namespace {

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

/// The number of codes of a [n, C, H, W] fake-quant activation that differ from NHWC packed codes, and the
/// largest difference.
std::pair<std::size_t, int> differing(xt::xtensor<float, 4> const& a, float alpha, int bits,
                                      xt::xtensor<std::uint8_t, 2> const& packed)
{
    std::vector<std::uint8_t> const f = pact_codes(a, alpha, bits);
    std::vector<std::uint8_t> const fn = nhwc(f.data(), a.shape(0), a.shape(1), a.shape(2) * a.shape(3));
    REQUIRE(fn.size() == packed.size());
    std::size_t d = 0;
    int worst = 0;
    for (std::size_t i = 0; i < fn.size(); ++i) {
        int const e = std::abs(static_cast<int>(fn[i]) - static_cast<int>(packed.data()[i]));
        d += e != 0;
        worst = std::max(worst, e);
    }
    return {d, worst};
}

using lowbit::test::argmax_row;

/// One conv - BN - ReLU - PACT<Bits> block, lowered by compile()'s own code, against integer loops and the
/// float layers. @p first: the input is the input map's codes (padding classes); else PACT codes of unit
/// 0.7 / n.
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
    float const alpha = 1.5f;
    constexpr int n_levels = (1 << Bits) - 1;
    nn::sequential block{nn::conv2d<P>(o, P{}), nn::batch_norm<4>({.channels = o.out}),
                         pact_act<Bits>{nn::relu{}, nn::quantize_activation<ste::pact<Bits>>(ste::pact<Bits>{{.alpha = alpha}})}};
    std::size_t const n = 3;
    std::mt19937 rng(seed);
    deploy::input_map const map{.scale = 0.0123f, .offset = -0.77f};
    double const unit = 0.7 / n_levels;
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
    deploy::packed_kbit_conv2d const conv = deploy::detail::lower_kbit_conv_block(
        block.template layer<0>(), block.template layer<1>(), block.template layer<2>(), h, w, first ? &map : nullptr,
        unit, max_code, "test");
    kernels::binary_conv2d_shape const& s = conv.shape();
    CHECK(conv.levels() == n_levels);
    CHECK(conv.thresholds().size() == (first ? deploy::padding_classes::of(s).count() : 1));
    std::size_t const rows = n * conv.out_pixels();
    std::vector<std::uint8_t> const qn = nhwc(q.data(), n, o.in, h * w);
    kernels::matrix_view<std::uint8_t> const in{qn.data(), n * h * w, o.in, o.in};

    // Integers: sum over the valid taps of code x level, in plain loops over NCHW.
    std::vector<std::int64_t> v(rows * o.out);
    conv.integers(in, n, v.data(), o.out);
    std::vector<std::int64_t> const loops = test::conv_loops(
        s, conv.weights(), n, [&](std::size_t i, std::size_t c, std::size_t y, std::size_t xx) { return std::int64_t{q(i, c, y, xx)}; });
    std::size_t wrong = 0;
    for (std::size_t r = 0; r < loops.size(); ++r) wrong += v[r] != loops[r];
    CHECK(wrong == 0);

    // Codes: each pixel's class's thresholds applied to v, and against the float layers (zero padding in float).
    xt::xtensor<std::uint8_t, 2> codes = xt::xtensor<std::uint8_t, 2>::from_shape({rows, o.out});
    conv.forward(in, n, codes.data(), o.out);
    std::size_t off_rule = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        deploy::level_thresholds const& t =
            first ? conv.thresholds()[conv.classes().pixel_class[r % conv.out_pixels()]] : conv.thresholds()[0];
        for (std::size_t j = 0; j < o.out; ++j) off_rule += codes(r, j) != t.code(j, v[r * o.out + j]);
    }
    CHECK(off_rule == 0);
    xt::xtensor<float, 4> const f = block.forward(x, {.training = false});
    auto const [d, worst] = differing(f, alpha, Bits, codes);
    // The float conv rounds its sums (the packed one is exact), so a value within rounding of a PACT step may
    // land on the next code; with random statistics that is rare, a wrong threshold or padding is not.
    CHECK(d <= 2);
    CHECK(worst <= 1);
}

using lowbit::test::kbit_recipe;
using binary_hidden_2 = kbit_recipe<ste::dorefa_weight<8>, ste::xnor_weight<>, ste::dorefa_weight<8>, 2>;
using levels_4 = kbit_recipe<ste::dorefa_weight<4>, ste::dorefa_weight<2>, ste::xnor_weight<per_tensor_t>, 4>;
using ternary_2 = kbit_recipe<ste::uniform_weight<3>, ste::twn_weight<>, ste::lsq<4, grid::signed_int>, 2>;

} // namespace

TEST_CASE_TEMPLATE("packed_kbit_conv2d equals integer loops and the float conv - batch_norm - ReLU - PACT", P,
                   ste::xnor_weight<>, ste::dorefa_weight<2>, ste::dorefa_weight<8>, ste::twn_weight<>,
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
        auto const [d, worst] = differing(f, alpha, 4, y);
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

TEST_CASE_TEMPLATE("a compiled PACT CNN agrees with the fake-quant model: every code, argmax, logits", R,
                   binary_hidden_2, levels_4, ternary_2)
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
        deploy::packed_kbit_cnn const packed = deploy::compile(model, {.input = map});
        CHECK(model.forward(x, eval) == fake);  // compile leaves the model as it was
        CHECK(packed.height() == size);
        CHECK(packed.width() == size);
        CHECK(packed.channels() == 2);
        CHECK(packed.classes() == classes);
        REQUIRE(packed.code_layers() == 5);
        CHECK(packed.convs()[0].thresholds().size() == 9);  // one per padding class of a 3x3 pad-1 convolution
        CHECK(packed.convs()[1].thresholds().size() == 1);

        xt::xtensor<std::uint8_t, 4> const codes = packed.quantize(x);
        xt::xtensor<float, 2> const logits = packed.forward(codes);
        CHECK(logits == packed.forward(x));

        // Codes, layer by layer.
        auto const a1 = model.template layer<0>().forward(x, eval);
        auto const a2 = model.template layer<1>().forward(a1, eval);
        auto const a3 = model.template layer<3>().forward(model.template layer<2>().forward(a2, eval), eval);
        auto const a4 = model.template layer<4>().forward(a3, eval);
        auto const flat = model.template layer<6>().forward(model.template layer<5>().forward(a4, eval), eval);
        auto const a5 = model.template layer<9>().forward(
            model.template layer<8>().forward(model.template layer<7>().forward(flat, eval), eval), eval);
        std::vector<xt::xtensor<std::uint8_t, 2>> const traced = packed.trace(codes);
        REQUIRE(traced.size() == 5);
        std::size_t d = 0;
        int worst = 0;
        for (auto const& [a, t] : {std::pair{&a1, &traced[0]}, std::pair{&a2, &traced[1]}, std::pair{&a3, &traced[2]},
                                   std::pair{&a4, &traced[3]}}) {
            auto const [di, wi] = differing(*a, alpha, bits, *t);
            d += di;
            worst = std::max(worst, wi);
        }
        std::vector<std::uint8_t> const f5 = pact_codes(a5, alpha, bits);
        for (std::size_t i = 0; i < f5.size(); ++i) {
            int const e = std::abs(static_cast<int>(f5[i]) - static_cast<int>(traced[4].data()[i]));
            d += e != 0;
            worst = std::max(worst, e);
        }
        std::size_t nonzero = 0;
        for (auto const& t : traced) nonzero += static_cast<std::size_t>(std::count_if(t.begin(), t.end(), [](std::uint8_t c) { return c != 0; }));
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

TEST_CASE("packed_kbit_conv2d and packed_kbit_cnn refuse what they cannot run, with clear messages")
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

    // packed_kbit_cnn: chaining.
    deploy::packed_weights const dw{.in = 48, .out = 2, .bits = 1, .signs = std::vector<std::uint64_t>(2, 0)};
    deploy::level_thresholds const t2{.levels = 3, .threshold = std::vector<std::int32_t>(6, 0),
                                      .negate = std::vector<std::uint8_t>(2, 0)};
    auto hidden = [&] { return deploy::packed_kbit_dense(dw, t2); };
    auto logits = [&](std::size_t in) {
        deploy::packed_weights lw{.in = in, .out = 2, .bits = 1, .signs = std::vector<std::uint64_t>(2, 0)};
        return deploy::packed_kbit_dense(lw, std::vector<double>(2, 1.0), std::vector<float>(2, 0.0f));
    };
    CHECK_NOTHROW(deploy::packed_kbit_cnn({}, {conv}, {deploy::pool_window{}}, {hidden(), logits(2)}));
    CHECK_THROWS_WITH_AS(deploy::packed_kbit_cnn({}, {conv}, {}, {hidden(), logits(2)}),
                         doctest::Contains("0 poolings for 1 convolutions"), invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_kbit_cnn({}, {conv}, {deploy::pool_window{.kernel = 2, .stride = 2}},
                                                 {hidden(), logits(2)}),
                         doctest::Contains("dense layer 0 reads 48 features, the layer before writes 12"),
                         invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_kbit_cnn({}, {conv}, {deploy::pool_window{}}, {logits(48), logits(2)}),
                         doctest::Contains("dense layer 0 must write codes"), invalid_input);
    CHECK_THROWS_WITH_AS(deploy::packed_kbit_cnn({}, {conv}, {deploy::pool_window{.kernel = 5, .stride = 1}},
                                                 {hidden(), logits(2)}),
                         doctest::Contains("the pooling after convolution 0 has stride 0 or a window larger than the "
                                           "4x4 feature map"),
                         invalid_input);
    kernels::binary_conv2d_shape s2 = s;
    s2.channels = 3;
    deploy::packed_weights const w2{.in = 27, .out = 3, .bits = 1, .signs = std::vector<std::uint64_t>(3, 0)};
    std::vector<deploy::level_thresholds> nine(9, t);
    CHECK_THROWS_WITH_AS(deploy::packed_kbit_cnn({}, {conv, deploy::packed_kbit_conv2d(s2, w2, nine)},
                                                 {deploy::pool_window{}, deploy::pool_window{}}, {hidden(), logits(2)}),
                         doctest::Contains("convolution 1 reads k-bit codes and has one set of thresholds, not 9"),
                         invalid_input);
    deploy::packed_kbit_cnn const cnn({}, {conv}, {deploy::pool_window{}}, {hidden(), logits(2)});
    CHECK_THROWS_WITH_AS((void)cnn.forward(xt::xtensor<float, 4>::from_shape({1, 2, 4, 5})),
                         doctest::Contains("shape mismatch: expected images of 2 x 4 x 4, got 2 x 4 x 5"), invalid_input);
}

namespace {
/// A small compiled PACT CNN with trained-looking BatchNorms, 4-bit activations, all three weight kinds.
deploy::packed_kbit_cnn small_packed_cnn()
{
    auto model = nn::cnn({.channels = 1, .size = 8, .width1 = 6, .width2 = 65, .hidden = 20, .classes = 3, .seed = 2},
                         ste::dorefa_weight<2>{}, ste::dorefa_weight<8>{}, ste::xnor_weight<>{},
                         ste::pact<4>{{.alpha = 2.0f}}, nn::bias_head);
    std::mt19937 rng(3);
    xt::xtensor<float, 4> x = xt::xtensor<float, 4>::from_shape({8, 1, 8, 8});
    for (float& v : x) v = static_cast<float>(rng() % 256u) / 255.0f;
    randomise_batch_norms(model, x, 4);
    return deploy::compile(model, {.input = {.scale = 0.01f, .offset = -0.5f}});
}

std::string kbit_cnn_problem(std::filesystem::path const& p)
{
    return problem(p, [](auto const& f) { return deploy::load_packed_kbit_cnn(f); });
}
} // namespace

TEST_CASE("a packed k-bit CNN round-trips through its file bit for bit, and each loader names the right one")
{
    test::temp_dir dir("packed_kbit_cnn_file");
    deploy::packed_kbit_cnn const packed = small_packed_cnn();
    deploy::save_packed(dir / "pact.lbpk", packed);
    CHECK(std::filesystem::file_size(dir / "pact.lbpk") == deploy::packed_bytes(packed));
    io::archive const a = io::load_archive(dir / "pact.lbpk");
    CHECK(deploy::packed_kind(a) == deploy::packed_model_kind::kbit_cnn);
    CHECK(a.meta().at("format") == "lowbit-packed-kbit-cnn");
    CHECK(a.meta().at("conv0.act_bits") == "4");
    deploy::packed_kbit_cnn const loaded = deploy::load_packed_kbit_cnn(dir / "pact.lbpk");
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
            CHECK(loaded.convs()[i].thresholds()[c].negate == packed.convs()[i].thresholds()[c].negate);
        }
    }
    CHECK(loaded.dense()[0].thresholds().threshold == packed.dense()[0].thresholds().threshold);
    CHECK(std::equal(loaded.dense()[1].scale().begin(), loaded.dense()[1].scale().end(), packed.dense()[1].scale().begin(),
                     packed.dense()[1].scale().end()));
    std::mt19937 rng(8);
    xt::xtensor<std::uint8_t, 4> q = xt::xtensor<std::uint8_t, 4>::from_shape({17, 1, 8, 8});
    for (auto& c : q) c = static_cast<std::uint8_t>(rng() & 0xFFu);
    CHECK(loaded.forward(q) == packed.forward(q));

    // Each loader names the right one for a k-bit CNN, and this one for the others.
    CHECK(problem(dir / "pact.lbpk", [](auto const& f) { return deploy::load_packed_cnn(f); }) ==
          "this is a packed k-bit CNN ('lowbit-packed-kbit-cnn'), not a packed CNN: load it with "
          "deploy::load_packed_kbit_cnn");
    CHECK(problem(dir / "pact.lbpk", [](auto const& f) { return deploy::load_packed_kbit(f); }) ==
          "this is a packed k-bit CNN ('lowbit-packed-kbit-cnn'), not a packed k-bit MLP: load it with "
          "deploy::load_packed_kbit_cnn");
    CHECK(problem(dir / "pact.lbpk", [](auto const& f) { return deploy::load_packed(f); }) ==
          "this is a packed k-bit CNN ('lowbit-packed-kbit-cnn'), not a packed MLP: load it with "
          "deploy::load_packed_kbit_cnn");
}

TEST_CASE("load_packed_kbit_cnn names the file and the problem")
{
    test::temp_dir dir("packed_kbit_cnn_errors");
    deploy::save_packed(dir / "m.lbpk", small_packed_cnn());
    std::string const s = test::read_file(dir / "m.lbpk");

    CHECK(kbit_cnn_problem(dir / "missing.lbpk") == "file not found");
    test::write_file(dir / "cut.lbpk", s.substr(0, s.size() - 9));
    CHECK(contains(kbit_cnn_problem(dir / "cut.lbpk"), "truncated: expected " + std::to_string(s.size()) + " bytes"));
    for (std::size_t const at : {std::size_t{40}, s.size() / 2, s.size() - 5}) {
        std::string damaged = s;
        damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
        test::write_file(dir / "damaged.lbpk", damaged);
        CHECK(contains(kbit_cnn_problem(dir / "damaged.lbpk"), "checksum mismatch: the file is corrupt"));
    }

    // Edited archives, saved with a valid checksum: the loader checks the content, not only the container.
    auto edited = [&](auto&& edit) {
        io::archive a = io::load_archive(dir / "m.lbpk");
        edit(a);
        io::save_archive(dir / "e.lbpk", a);
        return kbit_cnn_problem(dir / "e.lbpk");
    };
    CHECK(edited([](io::archive& a) { a.meta()["packed_version"] = "2"; }) ==
          "unsupported packed k-bit CNN version 2, and this lowbit reads packed k-bit CNN version 1");
    CHECK(edited([](io::archive& a) { a.meta().erase("format"); }).starts_with("not a packed lowbit model"));
    CHECK(contains(edited([](io::archive& a) { a.meta()["conv1.act_bits"] = "0"; }), "act_bits' is 0"));
    CHECK(edited([](io::archive& a) { a.meta()["conv2.kernel"] = "5"; }) ==
          "shape mismatch for entry 'conv2.codes': the file has [65, 54], expected [65, 150]");
    CHECK(edited([](io::archive& a) { a.meta()["conv1.pool_kernel"] = "40"; }) ==
          "inconsistent packed model: the pooling after convolution 1 has stride 0 or a window larger than its "
          "feature map");
    CHECK(contains(edited([](io::archive& a) { a.meta()["classes"] = "4"; }),
                   "inconsistent packed model: the last layer writes 3 logits, metadata 'classes' is 4"));
    CHECK(contains(edited([](io::archive& a) { a.meta()["conv0.act_bits"] = "2"; }),
                   "shape mismatch"));  // 3 thresholds per channel expected, 15 stored
    CHECK(edited([&](io::archive& a) {
              a = test::without(a, "conv1.negate");
              std::vector<std::uint8_t> flags(6, 0);
              flags[0] = 2;
              a.add("conv1.negate", {1, 6}, flags);
          }) == "inconsistent packed model: channel 0 of convolution 1 has negate flag 2, not 0 or 1");
}

TEST_CASE("sizes read from a packed k-bit CNN file are bounded before the loader allocates or loops on them "
          "(fuzz findings)")
{
    test::temp_dir dir("packed_kbit_cnn_bounds");
    deploy::save_packed(dir / "m.lbpk", small_packed_cnn());
    auto edited = [&](auto&& edit) {
        io::archive a = io::load_archive(dir / "m.lbpk");
        edit(a);
        io::save_archive(dir / "e.lbpk", a);
        return kbit_cnn_problem(dir / "e.lbpk");
    };

    // Only the image size changed: the first convolution built one padding class entry per output pixel before
    // any check (over 20 s, then 2 GiB, for height 2^31 - 2 or 65536 x 65536).
    CHECK(edited([](io::archive& a) { a.meta()["height"] = "2147483646"; }) ==
          "metadata 'height' is '2147483646', not a number up to 512");
    CHECK(edited([](io::archive& a) { a.meta()["height"] = a.meta()["width"] = "65536"; }) ==
          "metadata 'height' is '65536', not a number up to 512");
    CHECK(contains(edited([](io::archive& a) { a.meta()["height"] = a.meta()["width"] = "512"; }),
                   "shape mismatch for entry 'dense0."));

    // 0 filters, and 2^40 sets of thresholds of 0 filters (zero elements): 2^40 level_thresholds were allocated
    // before the layer refused 0 filters.
    constexpr std::size_t sets = std::size_t{1} << 40;
    CHECK(edited([&](io::archive& a) {
              a = test::without(test::without(test::without(a, "conv0.codes"), "conv0.threshold"), "conv0.negate");
              a.add("conv0.codes", {0, 9}, std::vector<std::int8_t>{});
              a.add("conv0.threshold", {sets, 0, 15}, std::vector<std::int32_t>{});
              a.add("conv0.negate", {sets, 0}, std::vector<std::uint8_t>{});
          }) == "inconsistent packed model: convolution 0: channels, height, width, filters, kernel and stride must be "
               "positive");
}
