// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::rounding_audit: checks a packed model against the fake-quant model it was compiled from, layer
/// by layer, in a way that does not depend on how the fake-quant model's float sums are ordered.
///
/// The packed model is exact: its thresholds give, for every integer sum v, the code the fake-quant model's own
/// BatchNorm and activation give to the real pre-activation of v (docs/deploy.md). The fake-quant model sums
/// its K products in float, in whatever order its GEMM (OpenBLAS's kernel for this CPU, the thread split, the
/// vector width, FMA contraction) chooses, so a value within that rounding of a step of the activation can get
/// the neighbouring code -- on one machine and not on another. Counting such differences and bounding the count
/// fits the bound to one machine. The audit instead derives, per output channel j, a bound e_j on the distance
/// between the fake-quant model's float pre-activation y and the packed model's (any summation order;
/// rounding_bound), evaluates the model's own BatchNorm + activation on y - e_j and y + e_j, and requires every
/// packed code to lie between the two codes (the activation is monotone per channel). A packed code outside that
/// interval is `unexplained`: a wrong threshold, padding class or layout, on any machine.
///
/// Once an image's codes differ in one layer, its later layers read other inputs in the two models, so the audit
/// skips that image's later layers (`skipped`); the fraction of values whose interval holds more than one code
/// (`ambiguous`) says how often rounding can matter at all.
///
/// @code
/// lowbit::deploy::rounding_audit audit(n);                        // n test images, audited in chunks
/// auto const y1 = model.layer<0>().forward(x, eval);              // the first dense layer's pre-activation
/// auto const h1 = audit.layer(0, y1, lowbit::deploy::rounding_bound(model.layer<0>(), 1.0),
///     [&](auto const& y) { return model.layer<2>().forward(model.layer<1>().forward(y, eval), eval); },
///     [](float v) { return v > 0.0f ? 1 : 0; },                   // sign activations: bit 1 is +1
///     [&](std::size_t i, std::size_t j, std::size_t) { return bit(signs, i, j); });
/// // ... the other layers, then the logits:
/// audit.logits(0, fake, packed_logits, lowbit::deploy::rounding_bound(model.layer<6>(), 1.0));
/// // deploy::audit does all this for the models deploy::compile compiles.
/// assert(audit.unexplained == 0 && audit.argmax_disagreements_where_codes_agree == 0);
/// @endcode

#include <lowbit/nn/layer_concepts.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief Per output channel j of a dense or conv2d layer @p layer whose inputs are at most @p max_abs_input in
/// magnitude, a bound on the distance between two evaluations of the layer's output in float, in any
/// summation order, and between either and the packed model's value.
///
/// With K = the weights per output channel, u = 2^-24 and gamma_m = m u / (1 - m u), a float sum of K products
/// x_k Q_jk plus a bias, in any order and with or without fused multiply-adds, is within
/// gamma_(K+1) (sum_k |x_k Q_jk| + |b_j|) of the exact value (Higham, Accuracy and Stability of Numerical
/// Algorithms, 2nd ed., section 3.1); the fake-quant model's inputs are themselves within u of the real values
/// the packed codes stand for, and the packed model's conversion of its exact integer sum to float rounds at
/// most four more times. So each evaluation is within gamma_(K+6) (max|x| sum_k |Q_jk| + |b_j|) of the exact
/// value, two of them within twice that of each other; the bound returned is 2 gamma_(K+8) (...), with room.
template <class Layer>
std::vector<double> rounding_bound(Layer& layer, double max_abs_input)
{
    std::size_t const out = layer.options().out;
    // The values the layer multiplies with in evaluation (the quantizer's levels times its scale).
    std::span<float const> const q = layer.weight().forward_values(nn::forward_context{.training = false});
    std::span<float const> const b = layer.bias();
    std::size_t const k = q.size() / out;
    double const u = std::ldexp(1.0, -24), m = static_cast<double>(k + 8), gamma = m * u / (1.0 - m * u);
    std::vector<double> bound(out);
    for (std::size_t j = 0; j < out; ++j) {
        double s = 0.0;
        for (std::size_t c = 0; c < k; ++c) s += std::abs(static_cast<double>(q[j * k + c]));
        s = s * max_abs_input + (b.empty() ? 0.0 : std::abs(static_cast<double>(b[j])));
        bound[j] = 2.0 * gamma * s;
    }
    return bound;
}

/// @brief The audit of a packed model against its fake-quant model over a test set of images, fed in chunks.
struct rounding_audit {
    std::vector<std::size_t> differing_per_image;  ///< codes of each image that differ from the fake-quant model's
    std::vector<char> near_rounding;  ///< whether some code or the argmax of the image is within rounding of a step
    std::size_t values = 0;       ///< codes compared (in images whose earlier layers agree)
    std::size_t differing = 0;    ///< of them, differing from the fake-quant model's
    std::size_t unexplained = 0;  ///< differing codes outside the rounding interval: must be 0
    std::size_t ambiguous = 0;    ///< codes whose rounding interval holds more than one code
    std::size_t skipped = 0;      ///< codes not compared: their image differs in an earlier layer
    std::size_t argmax_disagreements = 0;
    /// Argmax disagreements where every code of the image agrees and no two logits are within rounding of each
    /// other: must be 0.
    std::size_t argmax_disagreements_where_codes_agree = 0;
    std::size_t logits_outside = 0;  ///< logits farther apart than their bound where every code agrees: must be 0
    double max_logit_diff = 0.0;     ///< largest logit difference where every code agrees
    double max_logit_ratio = 0.0;    ///< ... as a fraction of its bound
    std::size_t fake_correct = 0, packed_correct = 0;  ///< argmax = label, of either model (logits() with labels)

    explicit rounding_audit(std::size_t images) : differing_per_image(images, 0), near_rounding(images, 0) {}

    std::size_t images() const noexcept { return differing_per_image.size(); }
    std::size_t images_differing() const noexcept
    {
        return static_cast<std::size_t>(std::ranges::count_if(differing_per_image, [](std::size_t d) { return d != 0; }));
    }
    /// Images whose fake-quant evaluation may change with the summation order: an ambiguous code, a near tie of
    /// the logits, or a code that differs from the packed model's. Two evaluations of the fake-quant model in
    /// different orders (another batch size, another machine) can disagree on at most these images.
    std::size_t images_near_rounding() const noexcept
    {
        std::size_t c = 0;
        for (std::size_t i = 0; i < images(); ++i) c += near_rounding[i] != 0 || differing_per_image[i] != 0;
        return c;
    }

    /// @brief Audits one code layer for images first .. first + y.shape(0) - 1 and returns the fake-quant model's
    /// activations (tail(y)), for its next layer.
    /// @param y       the fake-quant model's pre-activation, the output of its dense [n, C] or conv2d
    ///                [n, C, H, W] layer
    /// @param bound   per channel, rounding_bound() of that layer
    /// @param tail    the model's own layers after it (BatchNorm, activation): a callable on a tensor like y
    /// @param code    an activation value to its integer code (a sign: v > 0; PACT: round(v n / a))
    /// @param packed  (image in the chunk, channel, pixel) -> the packed model's code
    template <std::size_t Rank, class Tail, class Code, class Packed>
    auto layer(std::size_t first, xt::xtensor<float, Rank> const& y, std::span<double const> bound, Tail&& tail,
               Code&& code, Packed&& packed)
    {
        std::size_t const n = y.shape(0), channels = y.shape(1), plane = y.size() / (n * channels);
        xt::xtensor<float, Rank> lo = y, hi = y;
        for (std::size_t e = 0; e < y.size(); ++e) {
            double const d = bound[(e / plane) % channels];
            lo.data()[e] = static_cast<float>(static_cast<double>(y.data()[e]) - d);
            hi.data()[e] = static_cast<float>(static_cast<double>(y.data()[e]) + d);
        }
        auto f = tail(y);
        auto const f_lo = tail(lo), f_hi = tail(hi);
        std::vector<std::size_t> here(n, 0);
        for (std::size_t i = 0; i < n; ++i) {
            if (differing_per_image[first + i] != 0) {
                skipped += channels * plane;
                continue;
            }
            for (std::size_t c = 0; c < channels; ++c)
                for (std::size_t p = 0; p < plane; ++p) {
                    std::size_t const e = (i * channels + c) * plane + p;
                    long const at_lo = code(f_lo.data()[e]), at_hi = code(f_hi.data()[e]);
                    long const low = std::min(at_lo, at_hi), high = std::max(at_lo, at_hi);
                    long const fake = code(f.data()[e]), mine = packed(i, c, p);
                    ++values;
                    if (low != high) {
                        ++ambiguous;
                        near_rounding[first + i] = 1;
                    }
                    if (mine != fake) {
                        ++differing;
                        ++here[i];
                        unexplained += mine < low || mine > high;
                    }
                }
        }
        for (std::size_t i = 0; i < n; ++i) differing_per_image[first + i] += here[i];
        return f;
    }

    /// @brief Audits the logits of images first .. first + fake.shape(0) - 1: where every code agrees, each
    /// logit within its @p bound (rounding_bound of the last layer), and the argmax the same unless two of the
    /// fake-quant model's logits are within rounding of each other.
    /// With @p labels (of the whole test set), also counts each model's correct argmaxes.
    void logits(std::size_t first, xt::xtensor<float, 2> const& fake, xt::xtensor<float, 2> const& packed,
                std::span<double const> bound, std::optional<std::span<std::uint8_t const>> labels = std::nullopt)
    {
        std::size_t const classes = fake.shape(1);
        auto const argmax = [classes](xt::xtensor<float, 2> const& l, std::size_t i) {
            std::size_t best = 0;
            for (std::size_t j = 1; j < classes; ++j)
                if (l(i, j) > l(i, best)) best = j;
            return best;
        };
        for (std::size_t i = 0; i < fake.shape(0); ++i) {
            std::size_t const a = argmax(fake, i), b = argmax(packed, i);
            argmax_disagreements += a != b;
            if (labels) {
                fake_correct += a == (*labels)[first + i];
                packed_correct += b == (*labels)[first + i];
            }
            // Within rounding of a tie: another evaluation (or the packed model) may pick the other class.
            bool tie = false;
            for (std::size_t j = 0; j < classes; ++j)
                if (j != a && static_cast<double>(fake(i, a)) - fake(i, j) <= 2.0 * (bound[a] + bound[j])) tie = true;
            if (tie) near_rounding[first + i] = 1;
            if (differing_per_image[first + i] != 0) continue;
            for (std::size_t j = 0; j < classes; ++j) {
                double const d = std::abs(static_cast<double>(fake(i, j)) - packed(i, j));
                max_logit_diff = std::max(max_logit_diff, d);
                max_logit_ratio = std::max(max_logit_ratio, d / bound[j]);
                logits_outside += d > bound[j];
            }
            argmax_disagreements_where_codes_agree += a != b && !tie;
        }
    }
};

} // namespace lowbit::deploy
