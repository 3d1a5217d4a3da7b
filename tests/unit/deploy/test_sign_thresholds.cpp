// SPDX-License-Identifier: MIT
// deploy::fold_sign_thresholds: the integer rule equals sign(BN(y(v))) evaluated in float by the BatchNorm
// layer itself, for EVERY integer v of the range -- positive, negative and zero gamma, ties exactly at the
// boundary, NaN statistics -- and the kernels' sign_output applies the rule as sign_thresholds::sign_bit does.
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/kernels/binary_gemm.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/nn/batch_norm.hpp>

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace lowbit;

namespace {

/// sign(BN(y(j, v))) for every v in [lo, hi] and every channel, from one evaluation-mode forward of the
/// layer on a [hi - lo + 1, channels] tensor: the float truth the thresholds must reproduce.
template <class Y>
std::vector<std::vector<char>> truth(nn::batch_norm<2> bn, std::int64_t lo, std::int64_t hi, Y y)
{
    std::size_t const c = bn.options().channels, n = static_cast<std::size_t>(hi - lo + 1);
    xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({n, c});
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t j = 0; j < c; ++j) x(r, j) = y(j, lo + static_cast<std::int64_t>(r));
    xt::xtensor<float, 2> const out = bn.forward(x, {.training = false});
    std::vector<std::vector<char>> s(c, std::vector<char>(n));
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t j = 0; j < c; ++j) s[j][r] = !(out(r, j) < 0.0f);
    return s;
}

template <class Y>
void check_exhaustively(nn::batch_norm<2> const& bn, std::int64_t lo, std::int64_t hi, Y y)
{
    deploy::sign_thresholds const t = deploy::fold_sign_thresholds(bn, lo, hi, y);
    auto const s = truth(bn, lo, hi, y);
    std::size_t wrong = 0;
    for (std::size_t j = 0; j < s.size(); ++j)
        for (std::int64_t v = lo; v <= hi; ++v)
            if (t.sign_bit(j, v) != (s[j][static_cast<std::size_t>(v - lo)] != 0)) {
                if (wrong++ < 5) MESSAGE("channel " << j << " v " << v << " threshold " << t.threshold[j]);
            }
    CHECK(wrong == 0);
}

} // namespace

TEST_CASE("thresholds reproduce sign(BN(alpha v)) for every v, random statistics and both signs of gamma")
{
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (std::size_t const k : {std::size_t{64}, std::size_t{1000}}) {
        CAPTURE(k);
        std::size_t const c = 300;
        nn::batch_norm<2> bn({.channels = c});
        std::vector<float> alpha(c);
        float const s = std::sqrt(static_cast<float>(k));
        for (std::size_t j = 0; j < c; ++j) {
            alpha[j] = 0.05f + 0.5f * std::abs(u(rng));
            bn.gamma()[j] = 2.0f * u(rng);                  // about half negative
            bn.beta()[j] = u(rng);
            bn.running_mean()[j] = alpha[j] * s * u(rng);   // thresholds inside the reachable range
            bn.running_var()[j] = alpha[j] * alpha[j] * static_cast<float>(k) * (0.1f + std::abs(u(rng)));
        }
        bn.gamma()[0] = 0.0f;  // constant channels: the sign of beta
        bn.beta()[0] = -0.5f;
        bn.gamma()[1] = 0.0f;
        bn.beta()[1] = 0.25f;
        bn.gamma()[2] = 0.0f;
        bn.beta()[2] = 0.0f;   // BN = 0 everywhere: sign(0) = +1
        bn.gamma()[3] = -0.0f;
        bn.beta()[3] = -0.0f;  // -0 + -0 = -0, still not < 0: +1
        bn.running_mean()[4] = 1e6f;  // never reached: all -1 (gamma > 0) ...
        bn.gamma()[4] = 1.0f;
        bn.running_mean()[5] = 1e6f;  // ... or all +1 (gamma < 0)
        bn.gamma()[5] = -1.0f;
        auto const kk = static_cast<std::int64_t>(k);
        check_exhaustively(bn, -kk, kk, [&](std::size_t j, std::int64_t v) { return alpha[j] * static_cast<float>(v); });
        deploy::sign_thresholds const t =
            deploy::fold_sign_thresholds(bn, -kk, kk, [&](std::size_t j, std::int64_t v) { return alpha[j] * static_cast<float>(v); });
        CHECK(!t.sign_bit(0, 0));
        CHECK(t.sign_bit(1, -kk));
        CHECK(t.sign_bit(2, 3));
        CHECK(t.sign_bit(3, -5));
        CHECK(!t.sign_bit(4, kk));
        CHECK(t.sign_bit(5, kk));
    }
}

TEST_CASE("ties exactly at the boundary: BN(y) == 0 gives +1, on both sides of a negative gamma")
{
    // mean = alpha * v0 exactly, beta = 0: (y - mean) * k + beta is exactly 0 at v = v0.
    nn::batch_norm<2> bn({.channels = 4});
    float const alpha = 0.375f;  // exact products alpha * v
    std::int64_t const v0[4] = {7, -12, 0, 30};
    float const gamma[4] = {1.5f, -0.75f, 2.0f, -3.0f};
    for (std::size_t j = 0; j < 4; ++j) {
        bn.running_mean()[j] = alpha * static_cast<float>(v0[j]);
        bn.running_var()[j] = 0.3f;
        bn.gamma()[j] = gamma[j];
        bn.beta()[j] = 0.0f;
    }
    auto const y = [&](std::size_t, std::int64_t v) { return alpha * static_cast<float>(v); };
    deploy::sign_thresholds const t = deploy::fold_sign_thresholds(bn, -64, 64, y);
    for (std::size_t j = 0; j < 4; ++j) {
        CAPTURE(j);
        CHECK(t.sign_bit(j, v0[j]));  // the tie itself is +1
        if (gamma[j] > 0.0f) {
            CHECK(t.threshold[j] == v0[j]);
            CHECK(!t.sign_bit(j, v0[j] - 1));
            CHECK(t.sign_bit(j, v0[j] + 1));
        } else {
            CHECK(t.threshold[j] == v0[j] + 1);  // +1 for v < v0 + 1, by the flip bit
            CHECK(t.sign_bit(j, v0[j] - 1));
            CHECK(!t.sign_bit(j, v0[j] + 1));
        }
    }
    check_exhaustively(bn, -64, 64, y);
}

TEST_CASE("a boundary that double arithmetic misplaces: the float BatchNorm decides")
{
    // The real-number boundary lies strictly between two integers while the float BatchNorm rounds the
    // value at one of them to exactly 0 (+1) or keeps it just below 0: searching the float evaluation
    // itself gets it right either way, whatever the rounding does. Sweep many scales to hit such cases.
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<float> u(0.01f, 1.0f);
    std::size_t const c = 512;
    nn::batch_norm<2> bn({.channels = c});
    std::vector<float> alpha(c);
    for (std::size_t j = 0; j < c; ++j) {
        alpha[j] = u(rng);
        auto const v0 = static_cast<float>(static_cast<int>(j % 61) - 30);
        bn.running_mean()[j] = std::nextafter(alpha[j] * v0, (j % 2) ? 1e9f : -1e9f);  // just off the lattice
        bn.running_var()[j] = u(rng);
        bn.gamma()[j] = (j % 3 == 0) ? -u(rng) : u(rng);
        bn.beta()[j] = 0.0f;
    }
    check_exhaustively(bn, -40, 40, [&](std::size_t j, std::int64_t v) { return alpha[j] * static_cast<float>(v); });
}

TEST_CASE("NaN statistics give a constant sign, and a bad range is refused")
{
    nn::batch_norm<2> bn({.channels = 2});
    bn.running_var()[0] = -2.0f;  // sqrt(var + eps) of a negative number: NaN, and !(NaN < 0) is +1
    check_exhaustively(bn, -10, 10, [](std::size_t, std::int64_t v) { return static_cast<float>(v); });
    auto const y = [](std::size_t, std::int64_t v) { return static_cast<float>(v); };
    CHECK_THROWS_AS((void)deploy::fold_sign_thresholds(bn, 5, 4, y), invalid_input);
    CHECK_THROWS_AS((void)deploy::fold_sign_thresholds(bn, std::numeric_limits<std::int32_t>::min(), 0, y), invalid_input);
    CHECK_THROWS_AS((void)deploy::fold_sign_thresholds(bn, 0, std::int64_t{1} << 31, y), invalid_input);
}

TEST_CASE("kernels::sign_output applies the folded rule bit for bit")
{
    // Random +-1 operands through binary_gemm with the folded thresholds, against sign_bit on the int32 results.
    std::size_t const m = 9, n = 130, k = 200, words = kernels::words_for_bits(k), out_words = kernels::words_for_bits(n);
    std::mt19937_64 rng(3);
    std::vector<std::uint64_t> a(m * words), b(n * words);
    for (auto& w : a) w = rng();
    for (auto& w : b) w = rng();
    nn::batch_norm<2> bn({.channels = n});
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (std::size_t j = 0; j < n; ++j) {
        bn.gamma()[j] = u(rng);
        bn.beta()[j] = u(rng);
        bn.running_mean()[j] = 10.0f * u(rng);
        bn.running_var()[j] = 50.0f + 50.0f * u(rng);
    }
    auto const t = deploy::fold_sign_thresholds(bn, -200, 200, [](std::size_t, std::int64_t v) { return static_cast<float>(v); });
    std::vector<std::uint64_t> bits(m * out_words);
    std::vector<std::int32_t> v(m * n);
    kernels::binary_packed_b const pb({b.data(), n, k, words});
    kernels::binary_gemm({a.data(), m, k, words}, pb, t.output(bits.data(), out_words));
    kernels::binary_gemm({a.data(), m, k, words}, pb, kernels::int32_output{v.data(), n});
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j)
            CHECK(kernels::bit_at({bits.data(), m, n, out_words}, i, j) == t.sign_bit(j, v[i * n + j]));
}
