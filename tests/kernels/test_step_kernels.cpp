// SPDX-License-Identifier: MIT
// The quantizers' element-wise kernels (quant/detail/step_kernels.hpp) against their scalar references:
// bit for bit, on random data with rounding ties, clip boundaries, signed zeros, infinities and every tail
// length. Built once per instruction set (tests/kernels/CMakeLists.txt), with FMA enabled in the AVX builds,
// so a contracted multiply-add would show.
#include <lowbit/quant/detail/step_kernels.hpp>

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <vector>

#ifndef LOWBIT_TEST_CPU
#define LOWBIT_TEST_CPU "sse2"
#endif

namespace {

namespace ref = lowbit::detail::reference;
using vec = std::vector<float>;

bool cpu_ok() { return __builtin_cpu_supports(LOWBIT_TEST_CPU); }

/// Values around the grid of step s: multiples of s/2 (rounding ties), the clip bounds, signed zeros, large
/// values, and uniform noise.
vec awkward(std::size_t n, float s, float lo, float hi, std::uint32_t seed)
{
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> u(1.5f * lo * s - 1.0f, 1.5f * hi * s + 1.0f);
    std::uniform_int_distribution<int> pick(0, 7), half(static_cast<int>(2 * lo) - 3, static_cast<int>(2 * hi) + 3);
    vec x(n);
    for (float& v : x) {
        switch (pick(gen)) {
        case 0: v = static_cast<float>(half(gen)) * 0.5f * s; break;  // ties and grid points
        case 1: v = (pick(gen) % 2 ? lo : hi) * s; break;            // exactly on a bound
        case 2: v = pick(gen) % 2 ? 0.0f : -0.0f; break;
        case 3: v = (pick(gen) % 2 ? -1e30f : 1e30f); break;
        default: v = u(gen);
        }
    }
    return x;
}

vec noise(std::size_t n, std::uint32_t seed)
{
    std::mt19937 gen(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    vec v(n);
    for (float& x : v) x = d(gen);
    return v;
}

void check_same(std::span<float const> a, std::span<float const> b)
{
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        CAPTURE(i);
        CHECK(std::bit_cast<std::uint32_t>(a[i]) == std::bit_cast<std::uint32_t>(b[i]));
    }
}

void check_same(double a, double b) { CHECK(std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b)); }

std::vector<std::size_t> const sizes = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257, 1000, 4099};

struct grid_case {
    float s, lo, hi;
};
std::vector<grid_case> const grids = {{0.5f, -2.0f, 1.0f}, {0.1f, -8.0f, 7.0f}, {0.03f, -0.0f, 15.0f},
                                      {1.25f, -1.0f, 1.0f}, {0.007f, -128.0f, 127.0f}};

} // namespace

TEST_CASE("step_quantize and its backward pass equal the scalar reference bit for bit (" LOWBIT_TEST_CPU ")" * doctest::skip(!cpu_ok()))
{
    std::uint32_t seed = 1;
    for (auto const& g : grids)
        for (std::size_t n : sizes) {
            CAPTURE(n);
            CAPTURE(g.s);
            vec const x = awkward(n, g.s, g.lo, g.hi, seed++);
            vec const dy = noise(n, seed++);
            vec y(n), y_ref(n), dx(n, 9.0f), dx_ref(n, 7.0f);
            lowbit::detail::step_quantize(x, y, g.s, g.lo, g.hi);
            ref::step_quantize(x, y_ref, g.s, g.lo, g.hi);
            check_same(y, y_ref);
            double const sum = lowbit::detail::step_quantize_backward(x, dy, dx, g.s, g.lo, g.hi);
            double const sum_ref = ref::step_quantize_backward(x, dy, dx_ref, g.s, g.lo, g.hi);
            check_same(dx, dx_ref);
            check_same(sum, sum_ref);
        }
}

TEST_CASE("the reference's step gradient is LSQ's formula, up to float rounding of each product")
{
    vec const x = awkward(1000, 0.1f, -8.0f, 7.0f, 99);
    vec const dy = noise(1000, 98);
    vec dx(x.size());
    double want = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        double const t = x[i] / 0.1f;
        want += dy[i] * (t <= -8 ? -8.0 : t >= 7 ? 7.0 : std::nearbyint(t) - t);
    }
    CHECK(ref::step_quantize_backward(x, dy, dx, 0.1f, -8.0f, 7.0f) == doctest::Approx(want).epsilon(1e-5));
}

TEST_CASE("lloyd_pass equals the scalar reference bit for bit, infinities skipped (" LOWBIT_TEST_CPU ")" * doctest::skip(!cpu_ok()))
{
    std::uint32_t seed = 100;
    float const inf = std::numeric_limits<float>::infinity();
    for (float offset : {0.0f, 0.5f})
        for (auto const& g : grids)
            for (std::size_t n : sizes) {
                CAPTURE(n);
                CAPTURE(offset);
                vec x = awkward(n, g.s, g.lo, g.hi, seed++);
                if (n > 5) x[n / 2] = -inf, x[n / 3] = inf;
                auto const a = lowbit::detail::lloyd_pass(x, g.s, g.lo, g.hi, offset);
                auto const b = ref::lloyd_pass(x, g.s, g.lo, g.hi, offset);
                check_same(a.num, b.num);
                check_same(a.den, b.den);
                check_same(a.sq, b.sq);
            }
}

TEST_CASE("the Lloyd sums are the sums of x c, c^2 and x^2 for the nearest level")
{
    vec const x = {0.26f, -0.9f, 0.04f, 2.0f, -0.11f, std::numeric_limits<float>::infinity()};
    // s = 0.25, levels -2..2 (offset 0): c = {1, -2 (clipped from -3.6), 0, 2 (clipped), 0}, Inf skipped
    auto const t = ref::lloyd_pass(x, 0.25f, -2.0f, 2.0f, 0.0f);
    CHECK(t.num == doctest::Approx(0.26 + 1.8 + 4.0));
    CHECK(t.den == doctest::Approx(1.0 + 4 + 4));
    CHECK(t.sq == doctest::Approx(0.26 * 0.26 + 0.81 + 0.0016 + 4 + 0.0121));
}

TEST_CASE("pact_quantize and pact_backward equal the scalar reference bit for bit (" LOWBIT_TEST_CPU ")" * doctest::skip(!cpu_ok()))
{
    std::uint32_t seed = 200;
    for (float a : {0.7f, 4.0f, 10.0f})
        for (float n : {1.0f, 3.0f, 15.0f, 255.0f})
            for (std::size_t len : sizes) {
                CAPTURE(len);
                CAPTURE(a);
                CAPTURE(n);
                vec const x = awkward(len, a / n, -2.0f, n, seed++);
                vec const dy = noise(len, seed++);
                vec y(len), y_ref(len), dx(len), dx_ref(len);
                lowbit::detail::pact_quantize(x, y, a, n);
                ref::pact_quantize(x, y_ref, a, n);
                check_same(y, y_ref);
                check_same(lowbit::detail::pact_backward<false>(x, dy, dx, a, n),
                           ref::pact_backward<false>(x, dy, dx_ref, a, n));
                check_same(dx, dx_ref);
                check_same(lowbit::detail::pact_backward<true>(x, dy, dx, a, n),
                           ref::pact_backward<true>(x, dy, dx_ref, a, n));
                check_same(dx, dx_ref);
            }
}

TEST_CASE("dorefa_levels and max_abs equal the scalar reference bit for bit (" LOWBIT_TEST_CPU ")" * doctest::skip(!cpu_ok()))
{
    std::uint32_t seed = 300;
    for (float n : {1.0f, 3.0f, 15.0f, 255.0f})
        for (std::size_t len : sizes) {
            CAPTURE(len);
            CAPTURE(n);
            vec x = awkward(len, 2.0f / n, -0.5f * n, 0.5f * n, seed++);  // ties of the level grid, +-0
            for (float& v : x) v = std::tanh(v);
            float const m = lowbit::detail::max_abs(x);
            CHECK(std::bit_cast<std::uint32_t>(m) == std::bit_cast<std::uint32_t>(ref::max_abs(x)));
            for (float mm : {m, 0.0f}) {
                vec t = x, t_ref = x, y(len), y_ref(len);
                lowbit::detail::dorefa_levels(t, y, mm, n);
                ref::dorefa_levels(t_ref, y_ref, mm, n);
                check_same(y, y_ref);
                check_same(t, t_ref);
            }
        }
}

TEST_CASE("dorefa_levels gives DoReFa's 2^k levels 2 q_k(t / 2m + 1/2) - 1 and the tanh derivative")
{
    vec t = {-0.8f, -0.1f, 0.0f, 0.3f, 0.8f}, y(5);
    ref::dorefa_levels(t, y, 0.8f, 3.0f);  // levels -1, -1/3, 1/3, 1
    vec const want = {-1.0f, -1.0f / 3, 1.0f / 3, 1.0f / 3, 1.0f};
    for (std::size_t i = 0; i < 5; ++i) CHECK(y[i] == doctest::Approx(want[i]));
    CHECK(t[3] == doctest::Approx((1 - 0.09) / 0.8));
}

TEST_CASE("any_nan finds a NaN at every position of every tail")
{
    for (std::size_t n : sizes) {
        vec x = noise(n, 7);
        CHECK_FALSE(lowbit::detail::any_nan(x));
        for (std::size_t i = 0; i < n; i += (n > 40 ? 13 : 1)) {
            CAPTURE(i);
            vec y = x;
            y[i] = std::numeric_limits<float>::quiet_NaN();
            CHECK(lowbit::detail::any_nan(y));
        }
    }
}
