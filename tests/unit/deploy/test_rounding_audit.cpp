// SPDX-License-Identifier: MIT
// deploy::rounding_audit on hand-made layers: a code that differs within the rounding bound of a step is
// explained, one that differs farther away is not, later layers of a differing image are skipped, and the
// logits' checks (bound, argmax, near ties); rounding_bound against its formula.
#include <lowbit/deploy/rounding_audit.hpp>
#include <lowbit/nn/dense.hpp>

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

using namespace lowbit;

namespace {

auto identity = [](xt::xtensor<float, 2> const& y) { return y; };
auto sign_code = [](float v) { return v > 0.0f ? 1L : 0L; };

} // namespace

TEST_CASE("rounding_audit explains differences within the bound and counts the others")
{
    // Three images, two channels; channel 0's bound is 0.01, channel 1's 0.5.
    xt::xtensor<float, 2> const y = {{0.005f, 2.0f}, {-0.3f, 0.2f}, {1.0f, -3.0f}};
    std::vector<double> const bound = {0.01, 0.5};
    std::vector<long> const packed = {0, 1,   // image 0: channel 0 is within 0.01 of 0 -> explained
                                      0, 0,   // image 1: channel 1 (0.2) is within 0.5 of 0 -> explained
                                      0, 0};  // image 2: channel 0 (1.0) is 100 bounds from 0 -> unexplained
    deploy::rounding_audit a(3);
    auto const out = a.layer(0, y, bound, identity, sign_code,
                             [&](std::size_t i, std::size_t c, std::size_t) { return packed[i * 2 + c]; });
    CHECK(out == y);  // the fake-quant model's activations, for the next layer
    CHECK(a.values == 6);
    CHECK(a.differing == 3);
    CHECK(a.unexplained == 1);
    CHECK(a.ambiguous == 2);  // image 0 channel 0, image 1 channel 1
    CHECK(a.differing_per_image == std::vector<std::size_t>{1, 1, 1});
    CHECK(a.images_differing() == 3);

    // A second layer: every image differed, so all of it is skipped.
    xt::xtensor<float, 2> const y2 = {{5.0f}, {5.0f}, {5.0f}};
    std::vector<double> const b2 = {0.1};
    (void)a.layer(0, y2, b2, identity, sign_code, [](std::size_t, std::size_t, std::size_t) { return 0L; });
    CHECK(a.skipped == 3);
    CHECK(a.values == 6);
    CHECK(a.unexplained == 1);
}

TEST_CASE("rounding_audit's logits: the bound where codes agree, argmax disagreements, near ties")
{
    deploy::rounding_audit a(4);
    xt::xtensor<float, 2> const y = {{1.0f}, {1.0f}, {1.0f}, {1.0f}};
    std::vector<double> const b = {0.1};
    (void)a.layer(0, y, b, identity, sign_code, [](std::size_t i, std::size_t, std::size_t) { return i == 3 ? 0L : 1L; });
    REQUIRE(a.unexplained == 1);  // image 3's code differs (and would cascade)
    xt::xtensor<float, 2> const fake = {{1.0f, 0.0f}, {1.0f, 0.99999f}, {1.0f, 0.0f}, {1.0f, 0.0f}};
    xt::xtensor<float, 2> const packed = {{1.0f, 0.0f},    // agrees
                                          {0.99999f, 1.0f},  // swapped, but the two are within rounding: a tie
                                          {1.0f, 0.5f},      // off by 0.5: outside the bound
                                          {0.0f, 1.0f}};     // another class, but image 3's codes differ
    std::vector<double> const bound = {1e-4, 1e-4};
    std::vector<std::uint8_t> const labels = {0, 1, 0, 1};
    a.logits(0, fake, packed, bound, std::span<std::uint8_t const>(labels));
    CHECK(a.argmax_disagreements == 2);
    CHECK(a.argmax_disagreements_where_codes_agree == 0);
    CHECK(a.logits_outside == 1);  // image 2's second logit (image 1's are within 1e-5; image 3 is not compared)
    CHECK(a.near_rounding == std::vector<char>{0, 1, 0, 0});
    CHECK(a.images_near_rounding() == 2);  // image 1 (tie) and image 3 (differing code)
    CHECK(a.fake_correct == 2);            // images 0 and 2
    CHECK(a.packed_correct == 4);

    // An argmax that changes where the codes agree and the logits are far apart is counted.
    deploy::rounding_audit c(1);
    xt::xtensor<float, 2> const f1 = {{1.0f, 0.0f}}, p1 = {{0.0f, 1.0f}};
    c.logits(0, f1, p1, bound);
    CHECK(c.argmax_disagreements_where_codes_agree == 1);
}

TEST_CASE("rounding_bound is 2 gamma_(K+8) (max|x| sum_k |Q_jk| + |b_j|)")
{
    nn::dense<> layer({.in = 3, .out = 2, .bias = true, .seed = 1});
    std::vector<float> const w = {0.5f, -0.25f, 1.0f, -2.0f, 0.0f, 0.125f};
    layer.weight().assign(w);
    layer.bias()[0] = 0.75f;
    layer.bias()[1] = -1.5f;
    std::vector<double> const b = deploy::rounding_bound(layer, 2.0);
    double const u = std::ldexp(1.0, -24), gamma = 11.0 * u / (1.0 - 11.0 * u);
    REQUIRE(b.size() == 2);
    CHECK(b[0] == doctest::Approx(2.0 * gamma * (2.0 * 1.75 + 0.75)).epsilon(1e-12));
    CHECK(b[1] == doctest::Approx(2.0 * gamma * (2.0 * 2.125 + 1.5)).epsilon(1e-12));
}
