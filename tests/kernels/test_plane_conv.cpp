// SPDX-License-Identifier: MIT
// The plane convolution kernels (kernels/plane_conv.hpp) against their scalar references, bit for bit where the
// build has FMA: the forward product and the weight gradient on the tap tables of real convolutions (1 to 16
// channels, kernels 1, 3 and 5, padding 0 to 2), with output rows and positions that leave tails in every
// tile direction. The input's overread region and every position outside the outputs hold NaN, so a value
// that leaked into an output would show. Compiled once per instruction set, as test_gemm.cpp.
#include <lowbit/kernels/plane_conv.hpp>
#include <lowbit/kernels/reference/plane_conv.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#ifndef LOWBIT_TEST_CPU
#define LOWBIT_TEST_CPU "sse2"
#endif

using namespace lowbit::kernels;

namespace {

bool cpu_ok() { return __builtin_cpu_supports(LOWBIT_TEST_CPU); }

std::uint32_t bits(float f)
{
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

#if defined(__FMA__)
constexpr bool exact = true;
#else
constexpr bool exact = false;
#endif

float const qnan = std::numeric_limits<float>::quiet_NaN();

/// A stride-1 convolution of c zero-padded h x w planes (padding included) by a k x k kernel.
struct geometry {
    std::size_t c, h, w, k;
    std::size_t positions() const { return (h - k + 1) * w; }
    std::size_t taps() const { return c * k * k; }
    std::vector<std::ptrdiff_t> offsets() const
    {
        std::vector<std::ptrdiff_t> off;
        for (std::size_t ci = 0; ci < c; ++ci)
            for (std::size_t ky = 0; ky < k; ++ky)
                for (std::size_t kx = 0; kx < k; ++kx) off.push_back(static_cast<std::ptrdiff_t>((ci * h + ky) * w + kx));
        return off;
    }
    /// Planes of random values, k zeros (the positions past the last output column of the last row read up
    /// to k - 2 floats past the planes), then the overread region as NaN.
    std::vector<float> input(std::mt19937& rng) const
    {
        std::normal_distribution<float> d(0.0f, 1.0f);
        std::vector<float> x(c * h * w + k + plane_conv_overread, qnan);
        for (std::size_t i = 0; i < c * h * w; ++i) x[i] = d(rng);
        for (std::size_t i = c * h * w; i < c * h * w + k; ++i) x[i] = 0.0f;
        return x;
    }
    std::string name() const
    {
        return "c=" + std::to_string(c) + " h=" + std::to_string(h) + " w=" + std::to_string(w) + " k=" + std::to_string(k);
    }
};

std::vector<float> random_values(std::size_t n, std::mt19937& rng)
{
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& e : v) e = d(rng);
    return v;
}

/// Elements that differ: bit for bit when exact, else beyond (taps + 2) eps times the sum of |terms|.
std::size_t mismatches(std::vector<float> const& got, std::vector<float> const& want, std::vector<float> const& magnitude)
{
    std::size_t bad = 0;
    double const eps = std::numeric_limits<float>::epsilon();
    for (std::size_t i = 0; i < got.size(); ++i) {
        if (exact || std::isnan(want[i])) bad += bits(got[i]) != bits(want[i]) ? 1 : 0;
        else bad += std::fabs(static_cast<double>(got[i]) - want[i]) <= 4.0 * eps * magnitude[i] + 1e-30 ? 0 : 1;
    }
    return bad;
}

geometry const shapes[] = {{1, 30, 30, 3}, {2, 7, 9, 3}, {3, 5, 5, 1}, {16, 16, 16, 3}, {5, 11, 13, 5}, {1, 4, 70, 3}};

} // namespace

TEST_CASE("plane_conv matches the reference for every tile tail" * doctest::skip(!cpu_ok()))
{
    std::mt19937 rng(11);
    std::size_t cases = 0;
    for (geometry const& g : shapes)
        for (std::size_t m : {1, 3, 8, 9, 17, 32}) {
            auto const off = g.offsets();
            auto const x = g.input(rng);
            std::size_t const taps = g.taps(), n = g.positions(), ldw = taps + 2, ldy = n + 5;
            auto const w = random_values(m * ldw, rng);
            std::vector<float> got(m * ldy, qnan), want(m * ldy, qnan), magnitude(m * ldy, 0.0f);
            plane_conv(m, n, taps, off.data(), w.data(), ldw, x.data(), got.data(), ldy);
            reference::plane_conv(m, n, taps, off.data(), w.data(), ldw, x.data(), want.data(), ldy);
            for (std::size_t o = 0; o < m; ++o)
                for (std::size_t q = 0; q < n; ++q)
                    for (std::size_t t = 0; t < taps; ++t)
                        magnitude[o * ldy + q] += (taps + 2.0f) * std::fabs(w[o * ldw + t] * x[off[t] + static_cast<std::ptrdiff_t>(q)]);
            INFO(g.name() << " m=" << m);
            CHECK(mismatches(got, want, magnitude) == 0);
            // Every output is finite: no NaN of the overread region reached one.
            std::size_t nan_outputs = 0;
            for (std::size_t o = 0; o < m; ++o)
                for (std::size_t q = 0; q < n; ++q) nan_outputs += std::isnan(got[o * ldy + q]) ? 1 : 0;
            CHECK(nan_outputs == 0);
            ++cases;
        }
    CHECK(cases == std::size(shapes) * 6);
}

TEST_CASE("plane_conv_weight_grad matches the reference for every tile tail" * doctest::skip(!cpu_ok()))
{
    std::mt19937 rng(12);
    constexpr std::size_t lanes = plane_conv_lanes<>;
    for (geometry const& g : shapes)
        for (std::size_t m : {1, 3, 4, 5, 16, 33}) {
            auto const off = g.offsets();
            auto const x = g.input(rng);
            std::size_t const taps = g.taps(), n = g.positions(), lddy = n + 3, lddw = taps + 1;
            auto dy = random_values(m * lddy, rng);
            for (std::size_t o = 0; o < m; ++o)
                for (std::size_t q = n; q < lddy; ++q) dy[o * lddy + q] = qnan;  // never read
            std::vector<float> got(m * lddw, qnan), want(m * lddw, qnan), magnitude(m * lddw, 0.0f);
            plane_conv_weight_grad(m, n, taps, off.data(), dy.data(), lddy, x.data(), got.data(), lddw);
            reference::plane_conv_weight_grad(m, n, taps, off.data(), dy.data(), lddy, x.data(), want.data(), lddw, lanes);
            for (std::size_t o = 0; o < m; ++o)
                for (std::size_t t = 0; t < taps; ++t)
                    for (std::size_t q = 0; q < n; ++q)
                        magnitude[o * lddw + t] += (n + 2.0f) * std::fabs(dy[o * lddy + q] * x[off[t] + static_cast<std::ptrdiff_t>(q)]);
            INFO(g.name() << " m=" << m);
            CHECK(mismatches(got, want, magnitude) == 0);
            std::size_t nan_outputs = 0;
            for (std::size_t o = 0; o < m; ++o)
                for (std::size_t t = 0; t < taps; ++t) nan_outputs += std::isnan(got[o * lddw + t]) ? 1 : 0;
            CHECK(nan_outputs == 0);
        }
}

TEST_CASE("the plane convolution references compute a convolution")
{
    // A 1-channel 4x4 image padded to 6x6, a 3x3 kernel of ones at the centre tap only but one: y = x + x(right).
    geometry const g{1, 6, 6, 3};
    std::vector<float> x(g.c * g.h * g.w + g.k + plane_conv_overread, 0.0f);
    for (std::size_t y = 0; y < 4; ++y)
        for (std::size_t c = 0; c < 4; ++c) x[(y + 1) * 6 + c + 1] = static_cast<float>(y * 4 + c + 1);
    std::vector<float> w(9, 0.0f);
    w[4] = 1.0f;  // (ky, kx) = (1, 1): the pixel itself
    w[5] = 1.0f;  // (1, 2): its right neighbour
    auto const off = g.offsets();
    std::vector<float> y(g.positions(), -1.0f);
    reference::plane_conv(1, g.positions(), 9, off.data(), w.data(), 9, x.data(), y.data(), g.positions());
    for (std::size_t oy = 0; oy < 4; ++oy)
        for (std::size_t ox = 0; ox < 4; ++ox) {
            float const self = static_cast<float>(oy * 4 + ox + 1), right = ox < 3 ? self + 1.0f : 0.0f;
            CHECK(y[oy * 6 + ox] == self + right);
        }
    // The weight gradient of that output against a dY of ones at output (0, 0): the 3x3 input window at (0, 0).
    std::vector<float> dy(g.positions(), 0.0f);
    dy[0] = 1.0f;
    std::vector<float> dw(9, -1.0f);
    reference::plane_conv_weight_grad(1, g.positions(), 9, off.data(), dy.data(), g.positions(), x.data(), dw.data(), 9, 4);
    for (std::size_t ky = 0; ky < 3; ++ky)
        for (std::size_t kx = 0; kx < 3; ++kx) CHECK(dw[ky * 3 + kx] == x[ky * 6 + kx]);
}
