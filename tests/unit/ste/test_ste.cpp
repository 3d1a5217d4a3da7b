// SPDX-License-Identifier: MIT
// lowbit::ste fake quantizers: forward values on hand-computed examples, backward passes against finite
// differences of their smooth parts, STE gates, learned-parameter gradients, granularity and NaN handling.
#include <lowbit/quant/ste/ste.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace lowbit;
using vec = std::vector<float>;

namespace {

vec run_forward(auto& q, vec const& x)
{
    vec y(x.size());
    q.forward(x, y);
    return y;
}

vec run_backward(auto& q, vec const& dy)
{
    vec dx(dy.size());
    q.backward(dy, dx);
    return dx;
}

void check_close(vec const& got, vec const& want, double eps = 1e-5)
{
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(got[i] == doctest::Approx(want[i]).epsilon(eps));
    }
}

/// Central finite difference of f at x along coordinate i, in double.
double central(std::function<double(std::vector<double> const&)> const& f, std::vector<double> x, std::size_t i,
               double h = 1e-5)
{
    double const x0 = x[i];
    x[i] = x0 + h;
    double const fp = f(x);
    x[i] = x0 - h;
    double const fm = f(x);
    return (fp - fm) / (2 * h);
}

vec random_vec(std::size_t n, float lo, float hi, unsigned seed)
{
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> d(lo, hi);
    vec v(n);
    for (float& x : v) x = d(gen);
    return v;
}

template <class Q>
void check_nan_rejected(Q q, char const* name)
{
    vec const x{0.5f, std::nanf(""), 0.25f, 1.0f};
    vec y(x.size(), -7.0f);
    bool threw = false;
    try {
        q.forward(x, y);
    } catch (invalid_input const& e) {
        std::string const what = e.what();
        threw = what.find(name) != std::string::npos && what.find("1 input value(s) are NaN") != std::string::npos;
    }
    CHECK(threw);
    CHECK(y[0] == -7.0f);  // nothing written
}

constexpr std::array<std::size_t, 2> shape_2x3{2, 3};

} // namespace

// ---- concepts -------------------------------------------------------------------------------------------

static_assert(ste::FakeQuantizer<ste::dorefa_weight<2>>);
static_assert(ste::FakeQuantizer<ste::dorefa_weight<1, per_channel_t>>);
static_assert(ste::FakeQuantizer<ste::dorefa_activation<4>>);
static_assert(ste::FakeQuantizer<ste::xnor_weight<>>);
static_assert(ste::FakeQuantizer<ste::twn_weight<>>);
static_assert(ste::FakeQuantizer<ste::uniform_weight<2>>);
static_assert(!ste::LearnedFakeQuantizer<ste::dorefa_weight<2>>);
static_assert(!ste::LearnedFakeQuantizer<ste::xnor_weight<>>);
static_assert(ste::LearnedFakeQuantizer<ste::pact<4>>);
static_assert(ste::LearnedFakeQuantizer<ste::lsq<4>>);
static_assert(ste::LearnedFakeQuantizer<ste::lsq<4, grid::unsigned_int, per_channel_t>>);
static_assert(ste::PactQuantizer<ste::pact<4>> && !ste::CalibratedPact<ste::pact<4>>);
static_assert(ste::CalibratedPact<ste::pact<4, ste::alpha_gradient::calibrated>>);
static_assert(!ste::PactQuantizer<ste::lsq<4>> && !ste::CalibratedPact<ste::lsq<4>>);
static_assert(!ste::CalibratedPact<ste::dorefa_activation<4>> && !ste::FakeQuantizer<int>);
static_assert(std::is_same_v<ste::calibrated_t<ste::pact<3>>, ste::pact<3, ste::alpha_gradient::calibrated>>);
static_assert(std::is_same_v<ste::calibrated_t<ste::pact<3, ste::alpha_gradient::calibrated>>,
                             ste::pact<3, ste::alpha_gradient::calibrated>>);
static_assert(ste::lsq<4>::qn == 8 && ste::lsq<4>::qp == 7);
static_assert(ste::lsq<4, grid::unsigned_int>::qn == 0 && ste::lsq<4, grid::unsigned_int>::qp == 15);

TEST_CASE("ste NaN input is rejected with the quantizer's name")
{
    check_nan_rejected(ste::dorefa_weight<2>{}, "dorefa_weight");
    check_nan_rejected(ste::dorefa_weight<1>{}, "dorefa_weight");
    check_nan_rejected(ste::dorefa_activation<2>{}, "dorefa_activation");
    check_nan_rejected(ste::pact<2>{}, "pact");
    check_nan_rejected(ste::pact<2, ste::alpha_gradient::calibrated>{}, "pact");
    check_nan_rejected(ste::lsq<2>{}, "lsq");
    check_nan_rejected(ste::xnor_weight<per_tensor_t>{}, "xnor_weight");
    check_nan_rejected(ste::twn_weight<>{}, "twn_weight");
    check_nan_rejected(ste::uniform_weight<2>{}, "uniform_weight");
}

TEST_CASE("ste size mismatches and unbound per-channel quantizers throw")
{
    ste::dorefa_weight<2> q;
    vec const x{0.1f, 0.2f};
    vec y(3);
    CHECK_THROWS_AS(q.forward(x, y), invalid_input);
    vec dx(2);
    CHECK_THROWS_AS(q.backward(vec{1.0f, 1.0f}, dx), invalid_input);  // no forward yet
    ste::xnor_weight<> xn;                                             // per channel by default
    vec y2(2);
    CHECK_THROWS_AS(xn.forward(x, y2), invalid_input);
    std::array<std::size_t, 2> const bad{3, 1};
    xn.bind(bad);
    CHECK_THROWS_AS(xn.forward(x, y2), invalid_input);  // 2 values do not split into 3 channels
}

// ---- DoReFa weights ----------------------------------------------------------------------------------

TEST_CASE("dorefa_weight forward on a hand-computed example")
{
    // m = tanh 2; W~ = {0, 0.5 - 0.0518, 0.5 + 0.0518, 1}; 3 W~ = {0, 1.34, 1.66, 3} -> {0, 1, 2, 3}.
    ste::dorefa_weight<2> q;
    check_close(run_forward(q, {-2.0f, -0.1f, 0.1f, 2.0f}), {-1.0f, -1.0f / 3, 1.0f / 3, 1.0f});
    // 3 bits: levels 2i/7 - 1; W~ = 0.5 + 0.5 tanh(w)/tanh(1)
    ste::dorefa_weight<3> q3;
    vec const w{1.0f, 0.3f, -0.6f, 0.0f};
    vec const y = run_forward(q3, w);
    for (std::size_t i = 0; i < w.size(); ++i) {
        double const wt = 0.5 + 0.5 * std::tanh(double{w[i]}) / std::tanh(1.0);
        CHECK(y[i] == doctest::Approx(2.0 * std::nearbyint(7 * wt) / 7 - 1));
    }
    CHECK(y[0] == 1.0f);
    // tie: W~ = 1/2 for w = 0 with 2^k - 1 = 7 odd: 3.5 rounds to even 4, so Q(0) = 1/7
    CHECK(y[3] == doctest::Approx(1.0 / 7));
}

TEST_CASE("dorefa_weight backward is the tanh path with the max held constant")
{
    vec const w = random_vec(12, -1.5f, 1.5f, 1);
    vec const dy = random_vec(12, -1.0f, 1.0f, 2);
    ste::dorefa_weight<4> q;
    (void)run_forward(q, w);
    vec const dx = run_backward(q, dy);
    double m = 0;
    std::size_t arg = 0;
    for (std::size_t i = 0; i < w.size(); ++i)
        if (std::abs(std::tanh(double{w[i]})) > m) { m = std::abs(std::tanh(double{w[i]})); arg = i; }
    // smooth part with the rounding removed: Q~ = 2 W~ - 1 = tanh(w) / m
    auto const fixed_max = [&](std::vector<double> const& v) {
        double s = 0;
        for (std::size_t i = 0; i < v.size(); ++i) s += dy[i] * std::tanh(v[i]) / m;
        return s;
    };
    auto const true_max = [&](std::vector<double> const& v) {
        double mm = 0;
        for (double t : v) mm = std::max(mm, std::abs(std::tanh(t)));
        double s = 0;
        for (std::size_t i = 0; i < v.size(); ++i) s += dy[i] * std::tanh(v[i]) / mm;
        return s;
    };
    std::vector<double> const wd(w.begin(), w.end());
    for (std::size_t i = 0; i < w.size(); ++i) {
        CAPTURE(i);
        CHECK(dx[i] == doctest::Approx(central(fixed_max, wd, i)).epsilon(1e-4));
        // differentiating the max as well changes only the arg-max element
        if (i != arg) CHECK(dx[i] == doctest::Approx(central(true_max, wd, i)).epsilon(1e-4));
    }
    CHECK(dx[arg] != doctest::Approx(central(true_max, wd, arg)).epsilon(1e-3));
}

TEST_CASE("dorefa_weight at 1 bit is sign times the detached mean, identity backward")
{
    ste::dorefa_weight<1> q;
    check_close(run_forward(q, {0.5f, -1.0f, 0.0f, 2.5f}), {1.0f, -1.0f, 1.0f, 1.0f});  // E = 1, sign(0) = +1
    check_close(run_backward(q, {0.1f, -0.2f, 0.3f, 0.4f}), {0.1f, -0.2f, 0.3f, 0.4f});
}

TEST_CASE("dorefa_weight per channel normalises each output channel by its own max")
{
    ste::dorefa_weight<2, per_channel_t> q;
    q.bind(shape_2x3);
    vec const w{-2.0f, 0.1f, 2.0f, -0.02f, 0.001f, 0.02f};
    vec const y = run_forward(q, w);
    check_close(y, {-1.0f, 1.0f / 3, 1.0f, -1.0f, 1.0f / 3, 1.0f});
    vec const dx = run_backward(q, vec(6, 1.0f));
    CHECK(dx[5] == doctest::Approx((1 - std::pow(std::tanh(0.02), 2)) / std::tanh(0.02)));
    ste::dorefa_weight<2> whole;  // per tensor, the small row collapses to the middle levels
    vec const yt = run_forward(whole, w);
    CHECK(yt[3] == doctest::Approx(-1.0f / 3));  // W~ = 0.4896: 3 W~ = 1.47 -> 1
}

// ---- DoReFa activations ------------------------------------------------------------------------------

TEST_CASE("dorefa_activation forward and gate")
{
    ste::dorefa_activation<2> q;
    vec const a{-0.5f, 0.0f, 0.2f, 0.5f, 0.7f, 1.0f, 1.3f};
    check_close(run_forward(q, a), {0.0f, 0.0f, 1.0f / 3, 2.0f / 3, 2.0f / 3, 1.0f, 1.0f});
    check_close(run_backward(q, vec(7, 2.0f)), {0.0f, 2.0f, 2.0f, 2.0f, 2.0f, 2.0f, 0.0f});  // 1{0 <= a <= 1}
    ste::dorefa_activation<1> q1;
    check_close(run_forward(q1, {0.5f, 0.51f, 0.49f}), {0.0f, 1.0f, 0.0f});  // tie 0.5 -> even (0)
}

// ---- PACT and CG-PACT -----------------------------------------------------------------------------------

TEST_CASE("pact forward on a hand-computed example")
{
    ste::pact<2> q{{.alpha = 2.0f}};
    vec const x{-1.0f, 0.0f, 0.5f, 1.0f, 1.9f, 2.0f, 5.0f};
    // clip * 3/2 = {0, 0, 0.75, 1.5, 2.85, 3, 3} -> {0, 0, 1, 2, 3, 3, 3} (1.5 -> 2, even) -> * 2/3
    check_close(run_forward(q, x), {0.0f, 0.0f, 2.0f / 3, 4.0f / 3, 2.0f, 2.0f, 2.0f});
    CHECK(ste::pact<4>{}.alpha() == 10.0f);
    ste::pact<2> neg{{.alpha = -2.0f}};  // |alpha| is used
    check_close(run_forward(neg, x), run_forward(q, x));
    ste::pact<2> zero{{.alpha = 0.0f}};
    vec y(x.size());
    CHECK_THROWS_AS(zero.forward(x, y), invalid_input);
}

TEST_CASE("pact backward: gate 0 <= x < alpha, alpha gradient from x >= alpha")
{
    ste::pact<2> q{{.alpha = 2.0f}};
    vec const x{-1.0f, 0.0f, 0.5f, 1.0f, 1.9f, 2.0f, 5.0f};
    vec const dy{1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f};
    (void)run_forward(q, x);
    check_close(run_backward(q, dy), {0.0f, 2.0f, 3.0f, 4.0f, 5.0f, 0.0f, 0.0f});
    CHECK(q.gradients()[0] == doctest::Approx(13.0f));
    (void)run_backward(q, dy);  // accumulates
    CHECK(q.gradients()[0] == doctest::Approx(26.0f));

    ste::pact<2> neg{{.alpha = -2.0f}};  // d|alpha|/dalpha = -1
    (void)run_forward(neg, x);
    (void)run_backward(neg, dy);
    CHECK(neg.gradients()[0] == doctest::Approx(-13.0f));
}

TEST_CASE("pact alpha gradient matches finite differences where x >= alpha")
{
    vec const x = random_vec(10, 3.5f, 6.0f, 3);
    vec const dy = random_vec(10, -1.0f, 1.0f, 4);
    ste::pact<3> q{{.alpha = 3.0f}};
    (void)run_forward(q, x);
    (void)run_backward(q, dy);
    auto const loss = [&](std::vector<double> const& a) {
        ste::pact<3> p{{.alpha = static_cast<float>(a[0])}};
        vec const y = run_forward(p, x);
        double s = 0;
        for (std::size_t i = 0; i < y.size(); ++i) s += dy[i] * y[i];
        return s;
    };
    CHECK(q.gradients()[0] == doctest::Approx(central(loss, {3.0}, 0, 1e-3)).epsilon(1e-4));
}

TEST_CASE("cg-pact alpha gradient is the calibrated formula and differs from pact")
{
    float const alpha = 1.5f;
    vec const x{-0.3f, 0.1f, 0.4f, 0.77f, 1.2f, 1.5f, 2.0f};
    vec const dy{0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.0f, 0.3f};
    ste::pact<2> p{{.alpha = alpha}};
    ste::pact<2, ste::alpha_gradient::calibrated> cg{{.alpha = alpha}};
    vec const yp = run_forward(p, x), yc = run_forward(cg, x);
    check_close(yp, yc);  // same forward
    vec const dxp = run_backward(p, dy), dxc = run_backward(cg, dy);
    check_close(dxp, dxc);  // same input gradient
    double want = 0, want_pact = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        double const u = std::clamp(double{x[i]}, 0.0, double{alpha}) / alpha;
        if (x[i] >= alpha) { want += dy[i]; want_pact += dy[i]; }
        else want += dy[i] * (std::nearbyint(3 * u) / 3 - u);
    }
    CHECK(cg.gradients()[0] == doctest::Approx(want).epsilon(1e-5));
    CHECK(p.gradients()[0] == doctest::Approx(want_pact).epsilon(1e-5));
    CHECK(std::abs(cg.gradients()[0] - p.gradients()[0]) > 0.05f);

    // The formula is the derivative of alpha (u + sg(q_k(u) - u)), u = clip(x, 0, alpha)/alpha: the STE on the
    // rounding only. Finite differences of that surrogate, with the sg term frozen at the current alpha:
    std::vector<double> frozen(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        double const u = std::clamp(double{x[i]}, 0.0, double{alpha}) / alpha;
        frozen[i] = std::nearbyint(3 * u) / 3 - u;
    }
    auto const surrogate = [&](std::vector<double> const& a) {
        double s = 0;
        for (std::size_t i = 0; i < x.size(); ++i) {
            double const u = std::clamp(double{x[i]}, 0.0, a[0]) / a[0];
            s += dy[i] * a[0] * (u + frozen[i]);
        }
        return s;
    };
    // alpha = 1.5 is itself an input value (a kink): one-sided from below, where x = alpha is clipped (x >= alpha).
    double const h = 1e-4;
    double const fd = (surrogate({alpha - h}) - surrogate({alpha - 2 * h})) / h;
    CHECK(cg.gradients()[0] == doctest::Approx(fd).epsilon(1e-3));
}

// ---- LSQ ------------------------------------------------------------------------------------------------

TEST_CASE("lsq forward, gate and step gradient on a hand-computed example")
{
    ste::lsq<2> q{{.step = 0.5f}};  // Qn = 2, Qp = 1
    vec const v{-3.0f, -1.0f, -0.3f, 0.25f, 0.4f, 0.6f, 2.0f};
    // v/s = {-6, -2, -0.6, 0.5, 0.8, 1.2, 4} -> clip -> round (0.5 -> 0, even) -> * s
    check_close(run_forward(q, v), {-1.0f, -1.0f, -0.5f, 0.0f, 0.5f, 0.5f, 0.5f});
    vec const dy{1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    check_close(run_backward(q, dy), {0.0f, 0.0f, 1.0f, 1.0f, 1.0f, 0.0f, 0.0f});  // -2 < v/s < 1
    // (-2) + (-2) + (-1 + 0.6) + (0 - 0.5) + (1 - 0.8) + 1 + 1, times g = 1/sqrt(7 * 1)
    double const want = (-2 - 2 - 0.4 - 0.5 + 0.2 + 1 + 1) / std::sqrt(7.0);
    CHECK(q.gradients()[0] == doctest::Approx(want).epsilon(1e-5));
}

TEST_CASE("lsq step gradient matches finite differences of the surrogate, with the gradient scale")
{
    using q_t = ste::lsq<3>;  // Qn = 4, Qp = 3
    float const s0 = 0.3f;
    vec const v = random_vec(40, -1.6f, 1.3f, 5);
    vec const dy = random_vec(40, -1.0f, 1.0f, 6);
    q_t q{{.step = s0}};
    (void)run_forward(q, v);
    vec const dx = run_backward(q, dy);
    std::vector<double> frozen(v.size());  // sg(round(t) - t) inside the range
    for (std::size_t i = 0; i < v.size(); ++i) {
        double const t = std::clamp(double{v[i]} / s0, -4.0, 3.0);
        frozen[i] = std::nearbyint(t) - t;
        CAPTURE(i);
        CHECK(dx[i] == ((t > -4 && t < 3) ? dy[i] : 0.0f));
    }
    auto const surrogate = [&](std::vector<double> const& s) {
        double l = 0;
        for (std::size_t i = 0; i < v.size(); ++i) l += dy[i] * s[0] * (std::clamp(v[i] / s[0], -4.0, 3.0) + frozen[i]);
        return l;
    };
    double const g = 1.0 / std::sqrt(40.0 * 3.0);
    CHECK(q.gradients()[0] == doctest::Approx(g * central(surrogate, {s0}, 0, 1e-5)).epsilon(1e-4));
}

TEST_CASE("lsq initialises the step from the first batch")
{
    ste::lsq<4> q;  // Qp = 7
    CHECK(q.parameters()[0] == 0.0f);
    vec const x{1.0f, -2.0f, 3.0f, -4.0f};
    (void)run_forward(q, x);
    CHECK(q.parameters()[0] == doctest::Approx(2 * 2.5 / std::sqrt(7.0)));
    q.parameters()[0] = 0.25f;  // a set step is kept
    (void)run_forward(q, x);
    CHECK(q.parameters()[0] == 0.25f);

    ste::lsq<4, grid::unsigned_int> a;  // Qp = 15
    vec const zeros(4, 0.0f);
    vec const y = run_forward(a, zeros);  // all-zero batch: step stays unset, output 0, gradient passes
    CHECK(a.parameters()[0] == 0.0f);
    CHECK(y[0] == 0.0f);
    check_close(run_backward(a, {1.0f, 2.0f, 3.0f, 4.0f}), {1.0f, 2.0f, 3.0f, 4.0f});
    CHECK(a.gradients()[0] == 0.0f);
    a.initialise(x);
    CHECK(a.parameters()[0] == doctest::Approx(2 * 2.5 / std::sqrt(15.0)));
}

TEST_CASE("lsq unsigned clips negatives to 0 with gradient -Qn = 0")
{
    ste::lsq<2, grid::unsigned_int> q{{.step = 1.0f}};  // levels 0..3
    check_close(run_forward(q, {-1.0f, 0.4f, 2.5f, 9.0f}), {0.0f, 0.0f, 2.0f, 3.0f});
    check_close(run_backward(q, {1.0f, 1.0f, 1.0f, 1.0f}), {0.0f, 1.0f, 1.0f, 0.0f});
    CHECK(q.gradients()[0] == doctest::Approx((0 + (0 - 0.4) + (2 - 2.5) + 3) / std::sqrt(4.0 * 3)));
}

TEST_CASE("lsq per channel: one step per channel, each scaled by its own element count")
{
    ste::lsq<2, grid::signed_int, per_channel_t> q{{.step = 0.0f}};
    q.bind(shape_2x3);
    REQUIRE(q.parameters().size() == 2);
    vec const x{1.0f, -1.0f, 1.0f, 0.1f, -0.2f, 0.3f};
    (void)run_forward(q, x);
    CHECK(q.parameters()[0] == doctest::Approx(2.0f));  // 2 mean|x| / sqrt(1)
    CHECK(q.parameters()[1] == doctest::Approx(0.4f));
    (void)run_backward(q, vec(6, 1.0f));
    // channel 0: v/s = {0.5, -0.5, 0.5} -> round - t = {-0.5, 0.5, -0.5}; g = 1/sqrt(3)
    CHECK(q.gradients()[0] == doctest::Approx(-0.5 / std::sqrt(3.0)));
}

// ---- XNOR-Net -------------------------------------------------------------------------------------------

TEST_CASE("xnor_weight forward per channel")
{
    ste::xnor_weight<> q;
    q.bind(shape_2x3);
    check_close(run_forward(q, {1.0f, -2.0f, 3.0f, -0.5f, 0.5f, 0.0f}),
                {2.0f, -2.0f, 2.0f, -1.0f / 3, 1.0f / 3, 1.0f / 3});
    check_close(vec(q.scales().begin(), q.scales().end()), {2.0f, 1.0f / 3});
    ste::xnor_weight<per_tensor_t> t;
    check_close(run_forward(t, {1.0f, -2.0f, 3.0f, -0.5f, 0.5f, 0.0f}), {7.0f / 6, -7.0f / 6, 7.0f / 6, -7.0f / 6, 7.0f / 6, 7.0f / 6});
}

TEST_CASE("xnor_weight exact gradient: clipped STE plus finite differences of alpha(W) sign(W)")
{
    vec const w = random_vec(12, -1.4f, 1.4f, 7);
    vec const dy = random_vec(12, -1.0f, 1.0f, 8);
    ste::xnor_weight<> q;
    q.bind(std::array<std::size_t, 2>{3, 4});
    (void)run_forward(q, w);
    vec const dx = run_backward(q, dy);
    for (std::size_t c = 0; c < 3; ++c) {
        // sign held fixed: L(W) = sum_j dy_j alpha_c(W) sign(W_j)
        auto const loss = [&](std::vector<double> const& v) {
            double a = 0;
            for (std::size_t j = 0; j < 4; ++j) a += std::abs(v[j]);
            a /= 4;
            double l = 0;
            for (std::size_t j = 0; j < 4; ++j) l += dy[c * 4 + j] * a * (w[c * 4 + j] < 0 ? -1.0 : 1.0);
            return l;
        };
        std::vector<double> const wc(w.begin() + static_cast<long>(c * 4), w.begin() + static_cast<long>(c * 4 + 4));
        for (std::size_t j = 0; j < 4; ++j) {
            std::size_t const i = c * 4 + j;
            CAPTURE(i);
            double const ste_part = std::abs(w[i]) <= 1.0f ? double{q.scales()[c]} * dy[i] : 0.0;
            CHECK(dx[i] - ste_part == doctest::Approx(central(loss, wc, j)).epsilon(1e-4));
        }
    }
}

TEST_CASE("xnor_weight paper gradient")
{
    ste::xnor_weight<per_tensor_t> q{{.gradient = ste::xnor_gradient::paper}};
    (void)run_forward(q, {0.5f, -1.5f});  // alpha = 1, n = 2
    check_close(run_backward(q, {2.0f, 4.0f}), {2.0f * (0.5f + 1.0f), 4.0f * 0.5f});
}

// ---- TWN --------------------------------------------------------------------------------------------------

TEST_CASE("twn_weight forward per tensor and per channel, identity backward")
{
    ste::twn_weight<> q;
    vec const w{0.1f, -0.2f, 1.0f, -1.5f, 0.05f, 0.6f};
    // mean|W| = 0.575, Delta = 0.4025, I = {1.0, -1.5, 0.6}, alpha = 3.1/3
    float const a = 3.1f / 3;
    check_close(run_forward(q, w), {0.0f, 0.0f, a, -a, 0.0f, a});
    CHECK(q.thresholds()[0] == doctest::Approx(0.4025f));
    check_close(run_backward(q, {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}), {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f});

    ste::twn_weight<per_channel_t> c;
    c.bind(shape_2x3);
    // row 0 {0.1, -0.2, 1.0}: Delta = 0.7 * 1.3/3 = 0.3033, alpha = 1; row 1 {-1.5, 0.05, 0.6}: Delta = 0.5017, alpha = 1.05
    check_close(run_forward(c, w), {0.0f, 0.0f, 1.0f, -1.05f, 0.0f, 1.05f});
    ste::twn_weight<> z;
    check_close(run_forward(z, vec(3, 0.0f)), vec(3, 0.0f));  // nothing above the threshold: alpha = 0
}

// ---- uniform (SQWA) ---------------------------------------------------------------------------------------

TEST_CASE("uniform_weight uses the L2-optimal step of clip::l2_optimal on the odd grid")
{
    ste::uniform_weight<2> q;
    check_close(run_forward(q, {1.0f, -1.0f, 0.1f, -0.1f}), {1.0f, -1.0f, 0.0f, 0.0f});
    CHECK(q.steps()[0] == doctest::Approx(1.0f));
    check_close(run_backward(q, {1.0f, 2.0f, 3.0f, 4.0f}), {1.0f, 2.0f, 3.0f, 4.0f});

    vec const w = random_vec(64, -1.0f, 1.0f, 9);
    ste::uniform_weight<3> q3;  // levels -3..3
    vec const y = run_forward(q3, w);
    constexpr level_range l{-3, 3, 0.0f};
    float const want = l.step_for_range(clip::l2_optimal{}.range(w, l));
    CHECK(q3.steps()[0] == want);
    for (std::size_t i = 0; i < w.size(); ++i) {
        float const k = y[i] / want;
        CHECK(k == doctest::Approx(std::nearbyint(k)));
        CHECK(std::abs(k) <= 3.0f);
    }
    // the L2 error is no worse than with the max-abs step
    double e_opt = 0, e_max = 0;
    float const smax = l.step_for_range(clip::max_abs{}.range(w, l));
    for (std::size_t i = 0; i < w.size(); ++i) {
        e_opt += std::pow(w[i] - y[i], 2);
        e_max += std::pow(w[i] - smax * std::clamp(std::nearbyint(w[i] / smax), -3.0f, 3.0f), 2);
    }
    CHECK(e_opt <= e_max + 1e-9);
}

TEST_CASE("uniform_weight keeps its first step when asked, and works per channel")
{
    ste::uniform_weight<2> q{{.recompute_step = false}};
    (void)run_forward(q, {1.0f, -1.0f, 0.1f, -0.1f});
    check_close(run_forward(q, {2.0f, -2.0f, 0.6f, 0.4f}), {1.0f, -1.0f, 1.0f, 0.0f});  // step 1 kept, saturates
    ste::uniform_weight<2, per_channel_t> c;
    c.bind(shape_2x3);
    check_close(run_forward(c, {1.0f, -1.0f, 0.0f, 4.0f, -4.0f, 0.0f}), {1.0f, -1.0f, 0.0f, 4.0f, -4.0f, 0.0f});
    REQUIRE(c.steps().size() == 2);
    CHECK(c.steps()[1] == doctest::Approx(4.0f));
}

TEST_CASE("sat_rescale: Q* = Q / sqrt(n_out Var[Q]) with the variance detached")
{
    lowbit::ste::sat_rescale<lowbit::ste::dorefa_weight<2>> q;
    std::vector<std::size_t> const shape = {4, 3};  // dense [out = 4, in = 3]: n_out = 4
    q.bind(shape);
    CHECK(q.fan_out() == 4);
    std::vector<float> w = {0.9f, -0.2f, 0.4f, -1.3f, 0.05f, 0.7f, -0.6f, 1.1f, -0.01f, 0.3f, -0.8f, 0.2f};
    std::vector<float> plain(w.size()), scaled(w.size());
    lowbit::ste::dorefa_weight<2> ref;
    ref.bind(shape);
    ref.forward(w, plain);
    q.forward(w, scaled);
    double mean = 0.0, var = 0.0;
    for (float v : scaled) mean += v;
    mean /= static_cast<double>(scaled.size());
    for (float v : scaled) var += (v - mean) * (v - mean);
    var /= static_cast<double>(scaled.size() - 1);
    CHECK(var * 4.0 == doctest::Approx(1.0));  // Var[Q*] = 1 / n_out
    for (std::size_t i = 0; i < w.size(); ++i) CHECK(scaled[i] == doctest::Approx(plain[i] * q.scale()));
    // Backward: the inner quantizer's gradient, times the (constant) scale.
    std::vector<float> dy(w.size(), 1.0f), dx(w.size()), dref(w.size());
    q.backward(dy, dx);
    ref.backward(dy, dref);
    for (std::size_t i = 0; i < w.size(); ++i) CHECK(dx[i] == doctest::Approx(dref[i] * q.scale()));
    lowbit::ste::sat_rescale<lowbit::ste::dorefa_weight<2>> conv;
    std::vector<std::size_t> const conv_shape = {8, 4, 3, 3};
    conv.bind(conv_shape);
    CHECK(conv.fan_out() == 72);  // out_channels * kh * kw
}

TEST_CASE("tanh_clamp: tanh(w) / max|tanh w| in [-1, 1], gradient by finite differences with the max held")
{
    ste::tanh_clamp<> q;
    vec const w = random_vec(9, -2.0f, 2.0f, 5);
    vec const y = run_forward(q, w);
    float m = 0.0f;
    for (float v : w) m = std::max(m, std::abs(std::tanh(v)));
    for (std::size_t i = 0; i < w.size(); ++i) CHECK(y[i] == doctest::Approx(std::tanh(w[i]) / m));
    float peak = 0.0f;
    for (float v : y) peak = std::max(peak, std::abs(v));
    CHECK(peak == doctest::Approx(1.0f));  // the largest |w| maps to +-1
    vec const dy = random_vec(9, -1.0f, 1.0f, 6);
    vec const dx = run_backward(q, dy);
    double const md = m;
    for (std::size_t i = 0; i < w.size(); ++i) {
        auto f = [&](std::vector<double> const& v) { return dy[i] * std::tanh(v[0]) / md; };
        CHECK(dx[i] == doctest::Approx(central(f, {static_cast<double>(w[i])}, 0)).epsilon(1e-4));
    }
    ste::tanh_clamp<> zero;
    vec const z = run_forward(zero, vec(3, 0.0f));
    CHECK(z == vec(3, 0.0f));
    CHECK(run_backward(zero, vec{1.0f, 2.0f, 3.0f}) == vec{1.0f, 2.0f, 3.0f});
    check_nan_rejected(ste::tanh_clamp<>{}, "tanh_clamp");
}

static_assert(ste::LearnedFakeQuantizer<ste::any_quantizer>);
static_assert(ste::FakeQuantizer<ste::sat_rescale<ste::any_quantizer>>);

TEST_CASE("any_quantizer forwards to the quantizer it holds, copies deeply, and is the identity when empty")
{
    vec const x = random_vec(16, -1.0f, 12.0f, 9);
    vec const dy = random_vec(16, -1.0f, 1.0f, 10);
    ste::pact<3, ste::alpha_gradient::calibrated> ref({.alpha = 6.0f});
    ste::any_quantizer q = ref;
    CHECK(q.has_value());
    CHECK(run_forward(q, x) == run_forward(ref, x));
    CHECK(run_backward(q, dy) == run_backward(ref, dy));
    REQUIRE(q.parameters().size() == 1);
    CHECK(q.parameters()[0] == 6.0f);
    CHECK(q.gradients()[0] == ref.gradients()[0]);
    ste::any_quantizer copy = q;  // its own alpha and gradient
    copy.parameters()[0] = 2.0f;
    CHECK(q.parameters()[0] == 6.0f);
    CHECK(copy.target<ste::pact<3, ste::alpha_gradient::calibrated>>()->alpha() == 2.0f);
    CHECK(copy.target<ste::pact<3>>() == nullptr);

    ste::any_quantizer w = ste::dorefa_weight<2>{};  // learns nothing: no parameters
    CHECK(w.parameters().empty());
    CHECK(run_forward(w, x) == run_forward(*w.target<ste::dorefa_weight<2>>(), x));

    ste::any_quantizer identity;
    CHECK(!identity.has_value());
    CHECK(run_forward(identity, x) == x);
    CHECK(run_backward(identity, dy) == dy);
    CHECK(identity.parameters().empty());
    check_nan_rejected(ste::any_quantizer{ste::dorefa_activation<2>{}}, "dorefa_activation");
}

TEST_CASE("sign_activation: sign with sign(0) = +1, gradient gated at |x| <= 1")
{
    ste::sign_activation q;
    static_assert(ste::FakeQuantizer<ste::sign_activation> && ste::sign_activation::signed_domain);
    vec const x{-2.0f, -1.0f, -0.25f, 0.0f, 0.5f, 1.0f, 3.0f};
    CHECK(run_forward(q, x) == vec{-1.0f, -1.0f, -1.0f, 1.0f, 1.0f, 1.0f, 1.0f});
    CHECK(run_backward(q, vec(7, 2.0f)) == vec{0.0f, 2.0f, 2.0f, 2.0f, 2.0f, 2.0f, 0.0f});
    check_nan_rejected(ste::sign_activation{}, "sign_activation");
}

// ---- large tensors: threads and vectorised kernels -------------------------------------------------------

namespace {

/// forward + backward of a fresh copy of q on x, dy with `threads` threads: y, dx and the learned gradients.
template <class Q>
std::array<vec, 3> run_with_threads(Q q, vec const& x, vec const& dy, unsigned threads)
{
    unsigned const before = num_threads();
    set_num_threads(threads);
    vec y = run_forward(q, x);
    vec dx = run_backward(q, dy);
    vec grads;
    if constexpr (ste::LearnedFakeQuantizer<Q>) grads.assign(q.gradients().begin(), q.gradients().end());
    set_num_threads(before);
    return {std::move(y), std::move(dx), std::move(grads)};
}

template <class Q>
void check_thread_invariant(Q const& q, vec const& x, vec const& dy)
{
    auto const one = run_with_threads(q, x, dy, 1), two = run_with_threads(q, x, dy, 2);
    for (std::size_t k = 0; k < 3; ++k) {
        CAPTURE(k);
        CHECK(one[k] == two[k]);  // exact: fixed blocks, fixed lane order
    }
}

} // namespace

TEST_CASE("lsq, pact and uniform_weight give the same bits for 1 and 2 threads on a multi-block tensor")
{
    std::size_t const n = 3 * (std::size_t{1} << 15) + 77;  // several reduction blocks and a ragged tail
    vec const x = random_vec(n, -2.0f, 2.0f, 41);
    vec const dy = random_vec(n, -1.0f, 1.0f, 42);
    check_thread_invariant(ste::lsq<4>{{.step = 0.2f}}, x, dy);
    check_thread_invariant(ste::lsq<4, grid::unsigned_int>{{.step = 0.1f}}, x, dy);
    check_thread_invariant(ste::pact<4>{{.alpha = 1.5f}}, x, dy);
    check_thread_invariant(ste::calibrated_t<ste::pact<2>>{{.alpha = 1.5f}}, x, dy);
    check_thread_invariant(ste::uniform_weight<2>{}, x, dy);
}

TEST_CASE("lsq and CG-PACT parameter gradients on a large tensor match a plain double sum of the formula")
{
    std::size_t const n = 100003;
    vec const x = random_vec(n, -2.0f, 2.0f, 43);
    vec const dy = random_vec(n, -1.0f, 1.0f, 44);
    {
        ste::lsq<3> q{{.step = 0.3f}};  // Qn = 4, Qp = 3
        (void)run_forward(q, x);
        vec const dx = run_backward(q, dy);
        double want = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            float const t = x[i] / 0.3f;
            want += dy[i] * (t <= -4 ? -4.0 : t >= 3 ? 3.0 : std::nearbyint(t) - double{t});
        }
        CHECK(q.gradients()[0] == doctest::Approx(want / std::sqrt(n * 3.0)).epsilon(1e-5));
    }
    {
        ste::calibrated_t<ste::pact<2>> q{{.alpha = 1.5f}};
        vec const y = run_forward(q, x);
        vec const dx = run_backward(q, dy);
        double want = 0.0;
        for (std::size_t i = 0; i < n; ++i) {
            CHECK(dx[i] == (x[i] >= 0.0f && x[i] < 1.5f ? dy[i] : 0.0f));
            double const u = std::max(x[i], 0.0f) / 1.5f;
            want += x[i] >= 1.5f ? dy[i] : dy[i] * (std::nearbyint(3 * u) / 3 - u);
            CHECK(y[i] == doctest::Approx(1.5 * std::nearbyint(3 * std::min(u, 1.0)) / 3));
        }
        CHECK(q.gradients()[0] == doctest::Approx(want).epsilon(1e-5));
    }
}
