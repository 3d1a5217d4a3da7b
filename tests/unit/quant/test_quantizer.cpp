// SPDX-License-Identifier: MIT
// Grids, clipping policies, quantizer defaults and the get/set traits.
#include <lowbit/quant/clipping.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/traits.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

using namespace lowbit;

TEST_CASE("grid levels and steps")
{
    SUBCASE("binary is {-a, +a}")
    {
        constexpr auto l = grid::binary::levels<1>();
        CHECK(l.count() == 2);
        float const s = l.step_for_range(0.5f);
        CHECK((l.qmin + l.offset) * s == -0.5f);
        CHECK((l.qmax + l.offset) * s == 0.5f);
    }
    SUBCASE("symmetric_odd at 2 bits is ternary")
    {
        constexpr auto l = grid::symmetric_odd::levels<2>();
        CHECK(l.qmin == -1);
        CHECK(l.qmax == 1);
        CHECK(l.offset == 0.0f);
        CHECK(l.step_for_range(0.7f) == doctest::Approx(0.7f));
    }
    SUBCASE("symmetric_even at 2 bits is DoReFa's {-1, -1/3, 1/3, 1}")
    {
        constexpr auto l = grid::symmetric_even::levels<2>();
        CHECK(l.count() == 4);
        float const s = l.step_for_range(1.0f);
        CHECK((l.qmin + l.offset) * s == doctest::Approx(-1.0f));
        CHECK((-1 + l.offset) * s == doctest::Approx(-1.0f / 3));
        CHECK((l.qmax + l.offset) * s == doctest::Approx(1.0f));
    }
    SUBCASE("unsigned and signed ranges")
    {
        CHECK(grid::unsigned_int::levels<4>().qmin == 0);
        CHECK(grid::unsigned_int::levels<4>().qmax == 15);
        CHECK(grid::signed_int::levels<8>().qmin == -128);
        CHECK(grid::signed_int::levels<8>().qmax == 127);
        CHECK(grid::symmetric_odd::levels<8>().count() == 255);
    }
}

TEST_CASE("clipping policies compute their bounds")
{
    std::vector<float> const x = {1.0f, -3.0f, 0.5f, -0.5f, INFINITY};
    level_range const l = grid::symmetric_odd::levels<2>();
    CHECK(clip::fixed_range{.bound = 2.5f}.range(x, l) == 2.5f);
    CHECK(clip::max_abs{}.range(x, l) == 3.0f);          // Inf is ignored
    CHECK(clip::mean_abs{}.range(x, l) == doctest::Approx(1.25f));
    CHECK(clip::tanh_max{}.range(x, l) == 1.0f);
    std::vector<float> const empty;
    CHECK(clip::max_abs{}.range(empty, l) == 0.0f);
    CHECK(clip::mean_abs{}.range(empty, l) == 0.0f);
}

TEST_CASE("l2_optimal minimises the squared quantization error")
{
    std::mt19937 gen(7);
    std::normal_distribution<float> normal;
    std::vector<float> x(5000);
    for (auto& v : x) v = normal(gen);
    level_range const l = grid::symmetric_odd::levels<2>();
    auto error = [&](float a) {
        float const s = l.step_for_range(a);
        double e = 0.0;
        for (float v : x) {
            float const k = std::clamp(std::nearbyint(v / s), static_cast<float>(l.qmin), static_cast<float>(l.qmax));
            e += (v - k * s) * (v - k * s);
        }
        return e;
    };
    float const a = clip::l2_optimal{}.range(x, l);
    double const best = error(a);
    CHECK(best < error(clip::max_abs{}.range(x, l)));
    CHECK(best < error(clip::mean_abs{}.range(x, l)));
    for (float f : {0.8f, 0.9f, 0.95f, 1.05f, 1.1f, 1.25f}) CHECK(best <= error(a * f) * (1.0 + 1e-6));
    // For a unit Gaussian the optimal ternary threshold-step is about 1.22 (Lloyd-Max); allow a loose band.
    CHECK(a == doctest::Approx(1.22f).epsilon(0.1));
}

TEST_CASE("tanh_max maps into -1..1 with the largest magnitude at 1")
{
    std::vector<float> const x = {0.1f, -2.0f, 0.7f};
    std::vector<float> y(3);
    clip::tanh_max{}.transform(x, y);
    CHECK(y[1] == doctest::Approx(-1.0f));
    CHECK(y[0] == doctest::Approx(std::tanh(0.1f) / std::tanh(2.0f)));
}

TEST_CASE("quantizer defaults and get/set traits")
{
    using w2 = quantizer<2, nearest_even_t, clip::l2_optimal>;
    static_assert(bit_width_v<w2> == 2);
    static_assert(std::is_same_v<grid_t<w2>, grid::symmetric_odd>);
    static_assert(std::is_same_v<grid_t<quantizer<1>>, grid::binary>);
    static_assert(std::is_same_v<grid_t<quantizer<4, nearest_even_t, clip::max_abs, grid::unsigned_int>>, grid::unsigned_int>);
    static_assert(std::is_same_v<grid_t<quantizer<3, nearest_even_t, clip::tanh_max>>, grid::symmetric_even>);
    static_assert(std::is_same_v<rounding_t<set_rounding_t<w2, stochastic_t>>, stochastic_t>);
    // A default grid follows the bit width; an explicit one is kept.
    static_assert(std::is_same_v<grid_t<set_bit_width_t<w2, 1>>, grid::binary>);
    using even2 = quantizer<2, nearest_even_t, clip::max_abs, grid::symmetric_even>;
    static_assert(std::is_same_v<grid_t<set_bit_width_t<even2, 1>>, grid::symmetric_even>);
    static_assert(std::is_same_v<granularity_t<set_granularity_t<w2, per_channel_t>>, per_channel_t>);
    static_assert(std::is_same_v<overflow_t<set_overflow_t<w2, wrap_t>>, wrap_t>);
    static_assert(std::is_same_v<clipping_t<set_clipping_t<w2, clip::max_abs>>, clip::max_abs>);
    static_assert(std::is_same_v<set_grid_t<w2, grid::signed_int>::grid_type, grid::signed_int>);

    quantizer<4, nearest_even_t, clip::fixed_range> q{.clipping = {.bound = 2.0f}};
    CHECK(q.clipping.bound == 2.0f);
    CHECK(decltype(q)::levels.count() == 15);
}
