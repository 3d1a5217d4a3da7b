// SPDX-License-Identifier: MIT
// Rounding modes: every tie case of every mode, and the properties of nearest and stochastic rounding.
#include <lowbit/quant/rounding.hpp>
#include <lowbit/random/philox.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

using namespace lowbit;

namespace {
struct tie_row {
    float t, nearest_even, nearest_away, toward_zero, floor, ceil;
};
// Every tie (t = k + 1/2) for positive and negative k, even and odd k, and the non-ties around them.
constexpr tie_row tie_table[] = {
    {0.5f, 0.0f, 1.0f, 0.0f, 0.0f, 1.0f},     {1.5f, 2.0f, 2.0f, 1.0f, 1.0f, 2.0f},
    {2.5f, 2.0f, 3.0f, 2.0f, 2.0f, 3.0f},     {-0.5f, -0.0f, -1.0f, -0.0f, -1.0f, -0.0f},
    {-1.5f, -2.0f, -2.0f, -1.0f, -2.0f, -1.0f}, {-2.5f, -2.0f, -3.0f, -2.0f, -3.0f, -2.0f},
    {127.5f, 128.0f, 128.0f, 127.0f, 127.0f, 128.0f}, {-128.5f, -128.0f, -129.0f, -128.0f, -129.0f, -128.0f},
    {0.49999997f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f}, {-0.50000006f, -1.0f, -1.0f, -0.0f, -1.0f, -0.0f},
    {2.0f, 2.0f, 2.0f, 2.0f, 2.0f, 2.0f},     {-3.0f, -3.0f, -3.0f, -3.0f, -3.0f, -3.0f},
};
} // namespace

TEST_CASE("deterministic rounding modes on every tie case")
{
    for (auto const& r : tie_table) {
        CAPTURE(r.t);
        CHECK(nearest_even_t::round(r.t) == r.nearest_even);
        CHECK(nearest_away_t::round(r.t) == r.nearest_away);
        CHECK(toward_zero_t::round(r.t) == r.toward_zero);
        CHECK(floor_t::round(r.t) == r.floor);
        CHECK(ceil_t::round(r.t) == r.ceil);
    }
}

TEST_CASE("stochastic rounding on ties picks either neighbour, by the draw")
{
    CHECK(stochastic_t::round(2.5f, 0.49f) == 3.0f);  // u < frac: up
    CHECK(stochastic_t::round(2.5f, 0.5f) == 2.0f);   // u == frac: down (u < p rounds up)
    CHECK(stochastic_t::round(-2.5f, 0.1f) == -2.0f);
    CHECK(stochastic_t::round(-2.5f, 0.9f) == -3.0f);
    CHECK(stochastic_t::round(3.0f, 0.0f) == 3.0f);   // integers never move: frac = 0 and u < 0 is false
}

TEST_CASE_TEMPLATE("nearest rounding error is at most half a step", R, nearest_even_t, nearest_away_t)
{
    for (int i = -4000; i <= 4000; ++i) {
        float const t = static_cast<float>(i) * 0.01337f;
        CHECK(std::abs(R::round(t) - t) <= 0.5f);
    }
}

TEST_CASE_TEMPLATE("directed rounding moves in its direction by less than a step", R, toward_zero_t, floor_t, ceil_t)
{
    for (int i = -1000; i <= 1000; ++i) {
        float const t = static_cast<float>(i) * 0.0173f;
        float const r = R::round(t);
        CHECK(std::abs(r - t) < 1.0f);
        if constexpr (std::is_same_v<R, floor_t>) CHECK(r <= t);
        if constexpr (std::is_same_v<R, ceil_t>) CHECK(r >= t);
        if constexpr (std::is_same_v<R, toward_zero_t>) CHECK(std::abs(r) <= std::abs(t));
    }
}

TEST_CASE("stochastic rounding is unbiased with variance p(1-p) over 1e6 draws")
{
    random::counter_key const key{.seed = 2024, .step = 7, .stream = 1};
    constexpr std::uint64_t draws = 1'000'000;
    for (float const t : {0.1f, 0.5f, 0.75f, -1.3f, 3.999f}) {
        CAPTURE(t);
        double const p = static_cast<double>(t) - std::floor(static_cast<double>(t));
        double sum = 0.0, sum_sq = 0.0;
        for (std::uint64_t i = 0; i < draws; ++i) {
            double const e = stochastic_t::round(t, random::uniform_at(key, i)) - static_cast<double>(t);
            sum += e;
            sum_sq += e * e;
        }
        double const mean = sum / draws;
        double const var = sum_sq / draws - mean * mean;
        double const sigma = std::sqrt(p * (1.0 - p) / draws);  // standard error of the mean
        CHECK(std::abs(mean) <= 4.0 * sigma + 1e-7);            // step = 1: E[err] = 0
        // Var of a Bernoulli mean estimate: its own standard error is about sqrt(p(1-p)/n) as well.
        CHECK(std::abs(var - p * (1.0 - p)) <= 4.0 * std::sqrt(p * (1.0 - p) / draws) + 1e-6);
    }
}

TEST_CASE("rounding modes lower to their kernel mode")
{
    static_assert(detail::rounding_mode_of_v<nearest_even_t> == detail::rounding_mode::nearest_even);
    static_assert(detail::rounding_mode_of_v<stochastic_t> == detail::rounding_mode::stochastic);
    CHECK(detail::rounding_mode_of_v<ceil_t> == detail::rounding_mode::ceil);
}
