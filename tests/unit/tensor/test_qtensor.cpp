// SPDX-License-Identifier: MIT
// qtensor, quantize() and dequantize(): memory, round trips, granularity, non-finite input, bad shapes.
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/traits.hpp>
#include <lowbit/tensor/dequantize.hpp>
#include <lowbit/tensor/qtensor.hpp>
#include <lowbit/tensor/qtensor_concepts.hpp>
#include <lowbit/tensor/quantize.hpp>

#include <doctest/doctest.h>
#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <cmath>
#include <limits>
#include <random>

using namespace lowbit;

namespace {
template <int Bits>
using nearest_q = quantizer<Bits, nearest_even_t, clip::max_abs>;

xt::xtensor<float, 2> gaussian(std::size_t rows, std::size_t cols, unsigned seed)
{
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal;
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({rows, cols});
    for (auto& v : x) v = normal(gen);
    return x;
}
} // namespace

TEST_CASE_TEMPLATE("packed memory is ceil(n * bits / 8) bytes plus a small header", Q, nearest_q<1>, nearest_q<2>,
                   nearest_q<3>, nearest_q<4>, nearest_q<5>, nearest_q<7>, nearest_q<8>)
{
    static_assert(QuantizedTensor<qtensor<Q>>);
    for (std::size_t n : {1u, 7u, 8u, 9u, 1000u, 4097u}) {
        xt::xtensor<float, 1> x = xt::linspace<float>(-1.0f, 1.0f, n);
        auto const q = quantize<Q>(x);
        CHECK(q.packed_bytes() == (n * Q::bits + 7) / 8);
        CHECK(q.memory_bytes() <= q.packed_bytes() + 128);  // object + 1 step + 1 shape entry
        CHECK(q.size() == n);
    }
}

TEST_CASE_TEMPLATE("nearest round trip is within half a step and idempotent", Q, nearest_q<2>, nearest_q<3>,
                   nearest_q<4>, nearest_q<8>)
{
    auto const x = gaussian(33, 17, 1);
    auto const q = quantize<Q>(x);
    xt::xarray<float> const back = dequantize(q);
    float const step = q.steps()[0];
    CHECK(xt::amax(xt::abs(back - x))() <= 0.5f * step * (1.0f + 1e-6f));
    // Quantizing the dequantized values again with the same step gives the same codes.
    auto const again = quantize(back, quantizer<Q::bits, nearest_even_t, clip::fixed_range>{
                                          .clipping = {.bound = step * static_cast<float>(Q::levels.qmax)}});
    for (std::size_t i = 0; i < q.size(); ++i) REQUIRE(again.code(i) == q.code(i));
}

TEST_CASE("per-channel quantization uses one step per slice of axis 0")
{
    xt::xtensor<float, 2> x = {{0.1f, -0.2f, 0.05f}, {10.0f, -5.0f, 2.5f}};
    using q4 = quantizer<4, nearest_even_t, clip::max_abs, grid::symmetric_odd, per_channel_t>;
    auto const q = quantize<q4>(x);
    REQUIRE(q.steps().size() == 2);
    CHECK(q.steps()[0] == doctest::Approx(0.2f / 7));
    CHECK(q.steps()[1] == doctest::Approx(10.0f / 7));
    xt::xarray<float> const back = dequantize(q);
    CHECK(back(0, 1) == doctest::Approx(-0.2f));
    CHECK(back(1, 0) == doctest::Approx(10.0f));
    CHECK(q.value(4) == back(1, 1));
}

TEST_CASE("binary quantization is sign with a mean-abs scale (XNOR-Net)")
{
    xt::xtensor<float, 1> x = {0.5f, -1.5f, 0.0f, 2.0f};
    auto const q = quantize<quantizer<1, nearest_even_t, clip::mean_abs>>(x);
    xt::xarray<float> const back = dequantize(q);
    CHECK(back(0) == doctest::Approx(1.0f));
    CHECK(back(1) == doctest::Approx(-1.0f));
    CHECK(back(2) == doctest::Approx(1.0f));  // sign(0) = +1, as BinaryConnect
    CHECK(q.packed_bytes() == 1);
}

TEST_CASE("DoReFa weights land on 2i/(2^b - 1) - 1")
{
    xt::xtensor<float, 1> x = {-3.0f, -0.1f, 0.1f, 3.0f};
    auto const back = dequantize(quantize<quantizer<2, nearest_even_t, clip::tanh_max>>(x));
    CHECK(back(0) == doctest::Approx(-1.0f));
    CHECK(back(1) == doctest::Approx(-1.0f / 3));
    CHECK(back(2) == doctest::Approx(1.0f / 3));
    CHECK(back(3) == doctest::Approx(1.0f));
}

TEST_CASE("stochastic quantization: same seed, same bits with 1 and 2 threads, and unbiased")
{
    xt::xtensor<float, 2> const x = gaussian(512, 300, 3);  // 153600 values: several thread tasks
    using sq = quantizer<2, stochastic_t, clip::fixed_range, grid::symmetric_odd>;
    sq const q{.clipping = {.bound = 4.0f}};
    quantize_options const opts{.key = {.seed = 99, .step = 5, .stream = 2}};
    unsigned const before = num_threads();
    set_num_threads(1);
    auto const one = quantize(x, q, opts);
    set_num_threads(2);
    auto const two = quantize(x, q, opts);
    set_num_threads(before);
    CHECK(std::equal(one.codes().begin(), one.codes().end(), two.codes().begin(), two.codes().end()));
    auto const other_seed = quantize(x, q, {.key = {.seed = 100, .step = 5, .stream = 2}});
    CHECK_FALSE(std::equal(one.codes().begin(), one.codes().end(), other_seed.codes().begin()));
    // Unbiased: the mean error over 153600 values is far below the step (4 sigma of sd <= step/2 = 2: 0.0204).
    // The mean is taken in double: each error is a difference of two floats, exact or rounded once in double,
    // and the sum of n = 153600 of them is within gamma_n sum |e_i| <= gamma_n n * 4 of exact in any order
    // (u = 2^-53, gamma_n = n u / (1 - n u) = 1.7e-11), i.e. within 7e-11 of the mean: far below the 4-sigma
    // bound, so the check is the statistical one whatever the order. (xt::mean of the float expression sums in
    // float, in an order set by the SIMD width under -march: its bound, gamma_n(float) = 0.0092 times mean |e_i| =
    // 1.09, is 0.010 -- beside a mean error of 0.009, against 0.0204.)
    auto const back = dequantize(one);
    double err_sum = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i)
        err_sum += static_cast<double>(back.data()[i]) - static_cast<double>(x.data()[i]);
    double const mean_err = err_sum / static_cast<double>(x.size());
    CHECK(std::abs(mean_err) <= 4.0 * 0.5 * 4.0 / std::sqrt(153600.0));
}

TEST_CASE("non-finite input: Inf saturates, NaN is a clear error unless allowed")
{
    float const inf = std::numeric_limits<float>::infinity();
    xt::xtensor<float, 1> x = {inf, -inf, 0.5f, -0.25f};
    using q3 = quantizer<3, nearest_even_t, clip::max_abs>;
    auto const q = quantize<q3>(x);
    xt::xarray<float> const back = dequantize(q);
    CHECK(back(0) == doctest::Approx(0.5f));  // the bound comes from the finite values
    CHECK(back(1) == doctest::Approx(-0.5f));
    CHECK(back(2) == doctest::Approx(0.5f));

    xt::xtensor<float, 1> bad = {1.0f, std::nanf(""), 0.5f};
    xt::xtensor<float, 1> const copy = bad;
    CHECK_THROWS_WITH_AS(quantize<q3>(bad), doctest::Contains("1 NaN value"), invalid_input);
    CHECK(xt::all(xt::equal(xt::isnan(bad), xt::isnan(copy))));  // the input is untouched
    auto const allowed = quantize(bad, q3{}, {.allow_nan = true});
    CHECK(dequantize(allowed)(1) == 0.0f);  // NaN coded as level 0
}

TEST_CASE("saturate clamps, wrap wraps modulo 2^b")
{
    xt::xtensor<float, 1> x = {5.0f, -5.0f, 1.0f};
    using sat = quantizer<3, nearest_even_t, clip::fixed_range, grid::signed_int>;  // levels -4..3, step 1/3
    using wrp = set_overflow_t<sat, wrap_t>;
    auto const s = dequantize(quantize(x, sat{.clipping = {.bound = 3.0f}}));  // step 1
    CHECK(s(0) == 3.0f);
    CHECK(s(1) == -4.0f);
    auto const w = dequantize(quantize(x, wrp{.clipping = {.bound = 3.0f}}));
    CHECK(w(0) == -3.0f);  // 5 wraps to 5 - 8
    CHECK(w(1) == 3.0f);   // -5 wraps to -5 + 8
    CHECK(w(2) == 1.0f);
}

TEST_CASE("shape mismatch and bad construction are clear errors")
{
    auto const q = quantize<nearest_q<4>>(gaussian(3, 4, 5));
    xt::xtensor<float, 2> wrong = xt::zeros<float>({4, 3});
    CHECK_THROWS_WITH_AS(dequantize(q, wrong), doctest::Contains("shape mismatch: the qtensor has shape (3, 4)"),
                         invalid_input);
    CHECK(xt::all(xt::equal(wrong, 0.0f)));  // untouched
    xt::xtensor<float, 2> right = xt::zeros<float>({3, 4});
    dequantize(q, right);
    CHECK(xt::allclose(right, dequantize(q)));
    CHECK_THROWS_AS((qtensor<nearest_q<4>>({3, 4}, std::vector<std::uint8_t>(5), {1.0f})), invalid_input);
    CHECK_THROWS_AS((qtensor<nearest_q<4>>({3, 4}, std::vector<std::uint8_t>(6), {1.0f, 2.0f})), invalid_input);
    xt::xtensor<float, 0> scalar = 1.0f;
    using pc = quantizer<4, nearest_even_t, clip::max_abs, grid::symmetric_odd, per_channel_t>;
    CHECK_THROWS_WITH_AS(quantize<pc>(scalar), doctest::Contains("rank >= 1"), invalid_input);
}

TEST_CASE("expressions and non-float inputs are evaluated first")
{
    xt::xtensor<double, 1> d = {0.5, -1.0};
    auto const q = quantize<nearest_q<8>>(d * 2.0);
    CHECK(dequantize(q)(1) == doctest::Approx(-2.0f));
    auto const zero = quantize<nearest_q<2>>(xt::xtensor<float, 1>(xt::zeros<float>({5})));
    CHECK(xt::all(xt::equal(dequantize(zero), 0.0f)));  // a zero tensor stays zero (step 0)
}
