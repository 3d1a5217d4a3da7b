// SPDX-License-Identifier: MIT
// Finite-difference gradient checks for every layer, the straight-through estimator of quantized weights,
// shape errors, and weight states (packed weights take bits/32 of float).
#include <lowbit/nn/avg_pool2d.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/conv2d.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/flatten.hpp>
#include <lowbit/nn/hardtanh.hpp>
#include <lowbit/nn/max_pool2d.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/residual.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/nn/softmax_cross_entropy.hpp>
#include <lowbit/nn/weight.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/quantizer.hpp>

#include <doctest/doctest.h>
#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <random>
#include <vector>

using namespace lowbit;
using namespace lowbit::nn;

namespace {

template <std::size_t Rank>
xt::xtensor<float, Rank> random_tensor(std::array<std::size_t, Rank> shape, unsigned seed, float scale = 1.0f)
{
    std::mt19937 gen(seed);
    std::normal_distribution<float> d(0.0f, scale);
    xt::xtensor<float, Rank> t = xt::xtensor<float, Rank>::from_shape(shape);
    for (auto& v : t) v = d(gen);
    return t;
}

template <class T>
double dot(T const& a, T const& b)
{
    double s = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a.data()[i]) * b.data()[i];
    return s;
}

/// f(x) = <layer(x), r>. Checks d f / d x and d f / d (every parameter and weight) against central differences.
template <class L, class X>
void gradient_check(L& layer, X x, double tol = 2e-2)
{
    forward_context const ctx{.training = true};
    auto const y0 = layer.forward(x, ctx);
    using Y = std::remove_cvref_t<decltype(y0)>;
    Y r = Y::from_shape(y0.shape());
    std::mt19937 gen(99);
    std::normal_distribution<float> d;
    for (auto& v : r) v = d(gen);
    layer.for_each_weight([](auto& w) { std::fill(w.grad().begin(), w.grad().end(), 0.0f); });
    layer.for_each_parameter([](parameter& p) { std::fill(p.grad.begin(), p.grad.end(), 0.0f); });
    auto const dx = layer.backward(r);
    auto f = [&](X const& in) { return dot(layer.forward(in, ctx), r); };
    float const h = 1e-2f;
    auto check = [&](double analytic, double numeric) {
        CHECK(std::abs(analytic - numeric) <= tol * (1.0 + std::abs(numeric)));
    };
    for (std::size_t i = 0; i < x.size(); i += 1 + x.size() / 24) {
        X xp = x, xm = x;
        xp.data()[i] += h;
        xm.data()[i] -= h;
        check(dx.data()[i], (f(xp) - f(xm)) / (2.0 * h));
    }
    layer.for_each_weight([&](auto& w) {
        std::vector<float> const g(w.grad().begin(), w.grad().end());
        auto m = w.master();
        for (std::size_t i = 0; i < m.size(); i += 1 + m.size() / 24) {
            float const keep = m[i];
            m[i] = keep + h;
            double const fp = f(x);
            m[i] = keep - h;
            double const fm = f(x);
            m[i] = keep;
            check(g[i], (fp - fm) / (2.0 * h));
        }
    });
    layer.for_each_parameter([&](parameter& p) {
        std::vector<float> const g(p.grad.begin(), p.grad.end());
        for (std::size_t i = 0; i < p.value.size(); ++i) {
            float const keep = p.value[i];
            p.value[i] = keep + h;
            double const fp = f(x);
            p.value[i] = keep - h;
            double const fm = f(x);
            p.value[i] = keep;
            check(g[i], (fp - fm) / (2.0 * h));
        }
    });
}

} // namespace

TEST_CASE("dense gradients")
{
    dense<> l({.in = 7, .out = 5, .bias = true, .seed = 3});
    gradient_check(l, random_tensor<2>({4, 7}, 1));
}

TEST_CASE("conv2d gradients, with stride and padding")
{
    conv2d<> a({.in = 2, .out = 3, .kernel = 3, .stride = 1, .padding = 1, .bias = true, .seed = 4});
    gradient_check(a, random_tensor<4>({2, 2, 5, 5}, 2));
    conv2d<> b({.in = 2, .out = 2, .kernel = 2, .stride = 2, .padding = 0, .bias = false, .seed = 5});
    gradient_check(b, random_tensor<4>({1, 2, 6, 6}, 3));
}

TEST_CASE("conv2d's direct kernels and its im2col reference compute the same convolution")
{
    // The two paths sum the same products in different orders. Each result is within gamma_K * sum |terms| of
    // the exact sum for K operations per result (any order, with or without FMA; gamma_K = K u / (1 - K u),
    // u = 2^-24), so they differ by at most twice that. K: forward, the patch and the bias; input gradient,
    // O k^2 products; weight gradient, N * Ho * Wo products and the per-image partial sums.
    struct shape { std::size_t in, out, kernel, padding, n, h, w; };
    shape const shapes[] = {{3, 5, 3, 1, 3, 7, 6}, {1, 16, 3, 1, 4, 9, 9}, {2, 3, 5, 2, 2, 6, 8},
                            {4, 2, 3, 0, 2, 5, 5}, {2, 4, 2, 1, 3, 4, 5}, {17, 9, 1, 0, 2, 3, 4}};
    double const u = std::ldexp(1.0, -24);
    auto gamma = [u](double k) { return k * u / (1.0 - k * u); };
    unsigned const before = num_threads();
    for (unsigned threads : {1u, 2u}) {
        set_num_threads(threads);
        unsigned seed = 20;
        for (shape const& sh : shapes) {
            CAPTURE(sh.in);
            CAPTURE(sh.out);
            CAPTURE(sh.kernel);
            CAPTURE(sh.padding);
            conv2d_options o{.in = sh.in, .out = sh.out, .kernel = sh.kernel, .padding = sh.padding, .seed = seed,
                             .execution = execution::kernels};
            conv2d<> direct(o);
            o.execution = execution::reference;
            conv2d<> reference(o);
            std::mt19937 gen(seed);
            std::normal_distribution<float> d(0.0f, 0.5f);
            for (float& b : direct.bias()) b = d(gen);
            std::copy(direct.bias().begin(), direct.bias().end(), reference.bias().begin());
            auto const x = random_tensor<4>({sh.n, sh.in, sh.h, sh.w}, seed + 1);
            forward_context const ctx{.training = true};
            auto const yd = direct.forward(x, ctx), yr = reference.forward(x, ctx);
            REQUIRE(yd.shape() == yr.shape());
            auto const dy = random_tensor<4>({yd.shape(0), yd.shape(1), yd.shape(2), yd.shape(3)}, seed + 2);
            auto const dxd = direct.backward(dy), dxr = reference.backward(dy);
            std::size_t const k = sh.kernel, ho = yd.shape(2), wo = yd.shape(3);
            auto const w = direct.weight().master();
            auto input = [&](std::size_t s, std::size_t c, std::ptrdiff_t y, std::ptrdiff_t xx) {
                bool const in = y >= 0 && xx >= 0 && y < static_cast<std::ptrdiff_t>(sh.h) && xx < static_cast<std::ptrdiff_t>(sh.w);
                return in ? x(s, c, static_cast<std::size_t>(y), static_cast<std::size_t>(xx)) : 0.0f;
            };
            auto const p = static_cast<std::ptrdiff_t>(sh.padding);
            std::size_t forward_bad = 0, weight_bad = 0, input_bad = 0;
            // Forward, and the sums of |terms| of the input gradient, scattered the way the products reach dx.
            xt::xtensor<double, 4> dx_terms = xt::zeros<double>(dxd.shape());
            for (std::size_t s = 0; s < sh.n; ++s)
                for (std::size_t oc = 0; oc < sh.out; ++oc)
                    for (std::size_t oy = 0; oy < ho; ++oy)
                        for (std::size_t ox = 0; ox < wo; ++ox) {
                            double terms = std::fabs(direct.bias()[oc]);
                            for (std::size_t c = 0; c < sh.in; ++c)
                                for (std::size_t ky = 0; ky < k; ++ky)
                                    for (std::size_t kx = 0; kx < k; ++kx) {
                                        auto const iy = static_cast<std::ptrdiff_t>(oy + ky) - p, ix = static_cast<std::ptrdiff_t>(ox + kx) - p;
                                        double const wv = w[((oc * sh.in + c) * k + ky) * k + kx];
                                        terms += std::fabs(wv * input(s, c, iy, ix));
                                        if (iy >= 0 && ix >= 0 && iy < static_cast<std::ptrdiff_t>(sh.h) && ix < static_cast<std::ptrdiff_t>(sh.w))
                                            dx_terms(s, c, static_cast<std::size_t>(iy), static_cast<std::size_t>(ix)) += std::fabs(wv * dy(s, oc, oy, ox));
                                    }
                            double const bound = 2.0 * gamma(static_cast<double>(sh.in * k * k + 1)) * terms;
                            forward_bad += std::fabs(static_cast<double>(yd(s, oc, oy, ox)) - yr(s, oc, oy, ox)) <= bound ? 0 : 1;
                        }
            for (std::size_t i = 0; i < dxd.size(); ++i) {
                double const bound = 2.0 * gamma(static_cast<double>(sh.out * k * k)) * dx_terms.data()[i];
                input_bad += std::fabs(static_cast<double>(dxd.data()[i]) - dxr.data()[i]) <= bound ? 0 : 1;
            }
            auto const gd = direct.weight().grad(), gr = reference.weight().grad();
            for (std::size_t oc = 0; oc < sh.out; ++oc)
                for (std::size_t c = 0; c < sh.in; ++c)
                    for (std::size_t ky = 0; ky < k; ++ky)
                        for (std::size_t kx = 0; kx < k; ++kx) {
                            double terms = 0.0;
                            for (std::size_t s = 0; s < sh.n; ++s)
                                for (std::size_t oy = 0; oy < ho; ++oy)
                                    for (std::size_t ox = 0; ox < wo; ++ox)
                                        terms += std::fabs(dy(s, oc, oy, ox) * input(s, c, static_cast<std::ptrdiff_t>(oy + ky) - p,
                                                                                     static_cast<std::ptrdiff_t>(ox + kx) - p));
                            std::size_t const i = ((oc * sh.in + c) * k + ky) * k + kx;
                            double const bound = 2.0 * gamma(static_cast<double>(sh.n * ho * wo + sh.n + 1)) * terms;
                            weight_bad += std::fabs(static_cast<double>(gd[i]) - gr[i]) <= bound ? 0 : 1;
                        }
            CHECK(forward_bad == 0);
            CHECK(input_bad == 0);
            CHECK(weight_bad == 0);
            // Two real computations, not one path twice: the forward sums may come out identical (the xsimd
            // sgemm sums the patch in the same order as the direct kernel), but the weight gradient's lane sums
            // differ from a GEMM's running sum.
            std::size_t differ = 0;
            for (std::size_t i = 0; i < gd.size(); ++i) differ += gd[i] != gr[i] ? 1 : 0;
            CHECK(differ > 0);
            seed += 10;
        }
    }
    set_num_threads(before);
}

TEST_CASE("conv2d gradients on each path")
{
    for (execution e : {execution::kernels, execution::reference}) {
        conv2d<> a({.in = 2, .out = 3, .kernel = 3, .stride = 1, .padding = 1, .bias = true, .seed = 4, .execution = e});
        gradient_check(a, random_tensor<4>({2, 2, 5, 5}, 2));
    }
}

TEST_CASE("batch_norm gradients in training mode, 1d and 2d")
{
    batch_norm<2> a({.channels = 3});
    a.gamma()[1] = 1.7f;
    a.beta()[2] = -0.4f;
    gradient_check(a, random_tensor<2>({6, 3}, 4, 2.0f));
    batch_norm<4> b({.channels = 2});
    b.gamma()[0] = 0.6f;
    gradient_check(b, random_tensor<4>({3, 2, 2, 3}, 5));
}

TEST_CASE("batch_norm uses running statistics in evaluation mode")
{
    batch_norm<2> bn({.channels = 1, .momentum = 1.0f});
    xt::xtensor<float, 2> const x = {{1.0f}, {3.0f}};
    (void)bn.forward(x, {.training = true});
    CHECK(bn.running_mean()[0] == doctest::Approx(2.0f));
    CHECK(bn.running_var()[0] == doctest::Approx(2.0f));  // unbiased
    auto const y = bn.forward(xt::xtensor<float, 2>{{2.0f}}, {.training = false});
    CHECK(y(0, 0) == doctest::Approx(0.0f).epsilon(1e-4));
}

TEST_CASE("activation and pooling gradients")
{
    relu r;
    gradient_check(r, random_tensor<2>({3, 5}, 6));
    hardtanh ht;
    gradient_check(ht, random_tensor<4>({2, 2, 2, 2}, 7, 0.6f));
    max_pool2d mp;
    gradient_check(mp, random_tensor<4>({2, 2, 4, 4}, 8));
    avg_pool2d ap({.kernel = 2, .stride = 1});
    gradient_check(ap, random_tensor<4>({1, 2, 3, 3}, 9));
    global_avg_pool2d gp;
    gradient_check(gp, random_tensor<4>({2, 3, 2, 2}, 10));
    flatten fl;
    gradient_check(fl, random_tensor<4>({2, 1, 2, 3}, 11));
}

TEST_CASE("sequential and residual gradients")
{
    sequential s{dense<>({.in = 4, .out = 6, .seed = 1}), batch_norm<2>({.channels = 6}), dense<>({.in = 6, .out = 3, .seed = 2})};
    gradient_check(s, random_tensor<2>({3, 4}, 12));
    residual res{sequential{dense<>({.in = 4, .out = 4, .seed = 3}), batch_norm<2>({.channels = 4})}};
    gradient_check(res, random_tensor<2>({2, 4}, 13, 0.5f));
}

namespace {
/// Every weight's and parameter's gradient after one forward and backward pass of a fresh model from `make`,
/// with or without the input gradient.
template <class Make, class X>
std::vector<float> gradients_after_backward(Make make, X const& x, bool input_gradient)
{
    auto model = make();
    auto const y = model.forward(x, forward_context{.training = true});
    using Y = std::remove_cvref_t<decltype(y)>;
    Y dy = Y::from_shape(y.shape());
    std::mt19937 gen(5);
    std::normal_distribution<float> d;
    for (auto& v : dy) v = d(gen);
    if (input_gradient)
        (void)model.backward(dy);
    else
        backward_without_input_gradient(model, dy);
    std::vector<float> g;
    model.for_each_weight([&](auto& w) { g.insert(g.end(), w.grad().begin(), w.grad().end()); });
    model.for_each_parameter([&](parameter& p) { g.insert(g.end(), p.grad.begin(), p.grad.end()); });
    return g;
}
} // namespace

TEST_CASE("backward without the input gradient accumulates the same parameter gradients")
{
    // dense and conv2d skip it; a sequential passes the tag to its first layer only.
    static_assert(requires(dense<>& l, xt::xtensor<float, 2> const& dy) {
        { l.backward(dy, no_input_gradient) } -> std::same_as<void>;
    });
    static_assert(requires(conv2d<>& l, xt::xtensor<float, 4> const& dy) {
        { l.backward(dy, no_input_gradient) } -> std::same_as<void>;
    });
    auto const mlp = [] {
        return sequential{dense<>({.in = 12, .out = 9, .bias = true, .seed = 1}), batch_norm<2>({.channels = 9}),
                          relu{}, dense<>({.in = 9, .out = 4, .seed = 2})};
    };
    auto const x2 = random_tensor<2>({6, 12}, 21);
    std::vector<float> const all = gradients_after_backward(mlp, x2, true);
    CHECK(all.size() == 12 * 9 + 9 + 2 * 9 + 9 * 4 + 4);
    CHECK(std::ranges::any_of(all, [](float v) { return v != 0.0f; }));
    CHECK(gradients_after_backward(mlp, x2, false) == all);
    for (execution e : {execution::kernels, execution::reference}) {
        CAPTURE(static_cast<int>(e));
        auto const cnn = [e] {
            return sequential{sequential{conv2d<>({.in = 2, .out = 3, .kernel = 3, .stride = 1, .padding = 1,
                                                   .bias = true, .seed = 3, .execution = e}),
                                         relu{}},
                              conv2d<>({.in = 3, .out = 2, .kernel = 3, .stride = 1, .padding = 1, .seed = 4,
                                        .execution = e})};
        };
        auto const x4 = random_tensor<4>({3, 2, 6, 6}, 22);
        std::vector<float> const with = gradients_after_backward(cnn, x4, true);
        CHECK(std::ranges::any_of(with, [](float v) { return v != 0.0f; }));
        CHECK(gradients_after_backward(cnn, x4, false) == with);
    }
}

TEST_CASE("softmax cross-entropy value and gradient")
{
    xt::xtensor<float, 2> const z = {{1.0f, 2.0f, 0.5f}, {0.0f, 0.0f, 3.0f}};
    std::vector<std::uint8_t> const y = {1, 0};
    auto const l = softmax_cross_entropy(z, y);
    auto loss_of = [&](xt::xtensor<float, 2> const& zz) { return softmax_cross_entropy(zz, y).loss; };
    CHECK(l.correct == 1);
    double const expected = (-(2.0 - std::log(std::exp(1.0) + std::exp(2.0) + std::exp(0.5))) -
                             (0.0 - std::log(2.0 + std::exp(3.0)))) / 2.0;
    CHECK(l.loss == doctest::Approx(expected));
    for (std::size_t i = 0; i < z.size(); ++i) {
        auto zp = z, zm = z;
        zp.data()[i] += 1e-2f;
        zm.data()[i] -= 1e-2f;
        CHECK(l.grad.data()[i] == doctest::Approx((loss_of(zp) - loss_of(zm)) / 2e-2).epsilon(1e-2));
    }
    std::vector<std::uint8_t> const bad = {1, 7};
    CHECK_THROWS_WITH_AS(softmax_cross_entropy(z, bad), doctest::Contains("label 7"), invalid_input);
}

TEST_CASE("quantized weights: straight-through gradient and weight states")
{
    using w1 = quantizer<1, nearest_even_t, clip::fixed_range>;
    dense<w1> q({.in = 6, .out = 4, .bias = false, .seed = 21}, w1{.clipping = {.bound = 0.5f}});
    q.weight().bind(shadow_state{}, 1);
    auto const x = random_tensor<2>({3, 6}, 14);
    auto const y = q.forward(x, {.training = true});
    // The forward pass used +-0.5: compare with a float layer holding Q(w).
    dense<> f({.in = 6, .out = 4, .bias = false});
    auto const master = q.weight().master();
    for (std::size_t i = 0; i < master.size(); ++i) f.weight().master()[i] = master[i] >= 0 ? 0.5f : -0.5f;
    auto const yf = f.forward(x, {.training = true});
    CHECK(xt::allclose(y, yf));
    // STE: the shadow weight's gradient is the gradient with respect to Q(w).
    auto const r = random_tensor<2>({3, 4}, 15);
    (void)q.backward(r);
    (void)f.backward(r);
    for (std::size_t i = 0; i < master.size(); ++i) CHECK(q.weight().grad()[i] == doctest::Approx(f.weight().grad()[i]));
}

TEST_CASE("packed weights hold bits/32 of the float bytes and round stochastically on update")
{
    using w1s = quantizer<1, stochastic_t, clip::fixed_range>;
    using w4 = quantizer<4, nearest_even_t, clip::fixed_range, grid::symmetric_even>;
    weight<w1s> a({1024, 784}, w1s{.clipping = {.bound = 1.0f}});
    weight<w4> b({1000, 10}, w4{.clipping = {.bound = 1.0f}});
    CHECK(a.weight_bytes() == 1024 * 784 * 4);
    a.bind(packed_state{}, 1, 7);
    b.bind(packed_state{}, 2, 7);
    CHECK(a.weight_bytes() == 1024 * 784 / 8 + sizeof(float));  // 32x smaller, plus one step
    CHECK(b.weight_bytes() == 1000 * 10 / 2 + sizeof(float));   // 8x smaller
    CHECK_THROWS_AS((void)a.master(), invalid_input);
    auto v = a.values();
    CHECK(std::all_of(v.begin(), v.end(), [](float w) { return w == 1.0f || w == -1.0f; }));
    // A step of -0.5 from -1 lands on -0.5: it must round up to +1 with probability 1/4.
    std::vector<float> step(a.size());
    for (std::size_t i = 0; i < v.size(); ++i) step[i] = v[i] < 0 ? -0.5f : 0.0f;
    std::size_t negatives = 0, flipped = 0;
    for (float w : v) negatives += w < 0;
    a.step_on_grid(step, {.seed = 3, .step = 1, .stream = 1});
    auto const after = a.values();
    for (std::size_t i = 0; i < v.size(); ++i) flipped += v[i] < 0 && after[i] > 0;
    double const p = static_cast<double>(flipped) / static_cast<double>(negatives);
    CHECK(p == doctest::Approx(0.25).epsilon(0.03));
}

TEST_CASE("a weight holds the state a method binds, and only its data")
{
    using w2 = quantizer<2, nearest_even_t, clip::fixed_range>;  // levels -1, 0, 1
    weight<w2> w({2, 4}, w2{.clipping = {.bound = 1.0f}});
    CHECK(w.holds<shadow_state>());  // computes with Q(w) from the moment it is built
    std::vector<float> const v = {0.9f, -0.2f, 0.4f, -1.3f, 0.6f, 0.0f, -0.7f, 0.1f};
    w.assign(v);
    w.bind(packed_state{}, 3);
    CHECK((w.holds<packed_state>() && !w.holds<shadow_state>() && !w.holds<float_state>()));
    CHECK(w.values() == std::vector<float>{1.0f, 0.0f, 0.0f, -1.0f, 1.0f, 0.0f, -1.0f, 0.0f});
    CHECK(w.codes().size() == 2);  // 8 codes of 2 bits
    CHECK_THROWS_WITH_AS((void)w.master(), doctest::Contains("held as packed codes"), invalid_input);
    w.bind(float_state{}, 3);  // back to floats: the dequantized codes
    CHECK(w.holds<float_state>());
    CHECK(w.codes().empty());
    CHECK(std::vector<float>(w.master().begin(), w.master().end()) == w.values());
    CHECK(w.quantized_size() == 0);
    // A float policy stays in float state whatever is bound.
    weight<float_weights_t> f({3});
    f.bind(packed_state{}, 1);
    CHECK(f.holds<float_state>());
    // What a method must name, checked at compile time.
    static_assert(WeightState<packed_state> && !WeightState<int>);
}

TEST_CASE("shape mismatches are clear errors")
{
    dense<> d({.in = 5, .out = 2});
    CHECK_THROWS_WITH_AS(d.forward(xt::xtensor<float, 2>(xt::zeros<float>({2, 4})), {}),
                         doctest::Contains("expected 5 input features, got 4"), invalid_input);
    conv2d<> c({.in = 3, .out = 2});
    CHECK_THROWS_WITH_AS(c.forward(xt::xtensor<float, 4>(xt::zeros<float>({1, 2, 5, 5})), {}),
                         doctest::Contains("expected 3 input channels, got 2"), invalid_input);
    batch_norm<2> bn({.channels = 3});
    CHECK_THROWS_WITH_AS(bn.forward(xt::xtensor<float, 2>(xt::zeros<float>({2, 4})), {}),
                         doctest::Contains("expected 3 channels, got 4"), invalid_input);
}
