// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The weight policies deploy::compile packs (BinaryWeightPolicy, LevelWeightPolicy,
/// PackableWeightPolicy), and the lowering of a layer's quantized weights to deploy::packed_weights that the
/// MLP and CNN compilers share (lowbit::deploy::detail).
///
/// Q(w) is computed with a copy of the layer's own policy, as the evaluation forward of a BinaryConnect-trained
/// (shadow-weight) model does, and read back as integers: XNOR's alpha_j sign(w) as one sign bit per weight and
/// one alpha per channel; DoReFa's B-bit levels as odd integers 2c + 1 times the step 1 / (2^B - 1), c in int8.
///
/// @code
/// static_assert(lowbit::deploy::PackableWeightPolicy<lowbit::ste::xnor_weight<>>);
/// static_assert(lowbit::deploy::LevelWeightPolicy<lowbit::ste::dorefa_weight<8>>);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/padding_classes.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/kernels/binary_conv2d.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/quant/granularity.hpp>
#include <lowbit/quant/ste/dorefa_weight.hpp>
#include <lowbit/quant/ste/xnor_weight.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace lowbit::deploy {

namespace detail {
template <class P>
struct binary_policy : std::false_type {};
template <class G>
struct binary_policy<ste::xnor_weight<G>> : std::true_type {};
template <class G>
struct binary_policy<ste::dorefa_weight<1, G>> : std::true_type {};

template <class P>
struct level_policy_bits : std::integral_constant<int, 0> {};
template <int Bits, class G>
    requires(Bits >= 2 && Bits <= 8)
struct level_policy_bits<ste::dorefa_weight<Bits, G>> : std::integral_constant<int, Bits> {};
} // namespace detail

/// @brief Weight policies that compile() packs as sign bits with a scale: ste::xnor_weight (per channel or
/// per tensor) and ste::dorefa_weight<1>, whose Q(w) is alpha * sign(w).
template <class P>
concept BinaryWeightPolicy = detail::binary_policy<P>::value;

/// @brief Weight policies that compile() packs as odd levels in int8 codes: ste::dorefa_weight<Bits> with
/// Bits 2..8, whose Q(w) is one of the 2^Bits levels (2r - (2^Bits - 1)) / (2^Bits - 1).
template <class P>
concept LevelWeightPolicy = detail::level_policy_bits<P>::value != 0;

/// @brief Weight policies compile() supports in any position: BinaryWeightPolicy or LevelWeightPolicy.
template <class P>
concept PackableWeightPolicy = BinaryWeightPolicy<P> || LevelWeightPolicy<P>;

namespace detail {

/// A dense layer's quantized weights in packed form, plus what the folding needs.
struct lowered_dense {
    packed_weights w;
    std::vector<double> step;             ///< per channel: alpha_j (binary) or 1 / (2^Bits - 1)
    std::vector<std::int64_t> level_sum;  ///< per channel: sum_k level_jk
    std::vector<float> bias;              ///< the layer's bias, empty without one
};

/// The packed form of a layer's weights: @p values (out x in, row-major) quantized by a copy of @p policy
/// -- Q(w), what the evaluation forward of a shadow-weight model multiplies with -- with the columns then
/// taken in @p order (column k of the result is column order[k] of the layer; empty: unchanged), so that a
/// convolution's patches and a flattened feature map can be read in the packed model's layout.
template <PackableWeightPolicy P>
lowered_dense lower_weights(P policy, std::vector<float> const& values, std::size_t out, std::size_t in,
                            std::vector<std::size_t> const& order, std::span<float const> bias,
                            std::string const& which)
{
    std::vector<float> q0(values.size());
    policy.forward(values, q0);  // a copy: its forward keeps state, and Q(w) is what the model evaluates with
    std::vector<float> v = values, q = q0;
    if (!order.empty())
        for (std::size_t j = 0; j < out; ++j)
            for (std::size_t k = 0; k < in; ++k) {
                v[j * in + k] = values[j * in + order[k]];
                q[j * in + k] = q0[j * in + order[k]];
            }
    lowered_dense r;
    r.w.in = in;
    r.w.out = out;
    r.step.resize(out);
    std::string const where = "lowbit::deploy::compile: the " + which + " layer's weights";
    if constexpr (BinaryWeightPolicy<P>) {
        r.w.bits = 1;
        r.w.signs.assign(out * r.w.words(), 0);
        // sign(w) with sign(0) = +1 is bit !(w < 0), as the policies' sign_pos; alpha_j = |Q(w)| of the row.
        kernels::pack_sign_rows(v.data(), out, in, in, r.w.signs.data(), r.w.words());
        r.w.scale.resize(out);
        for (std::size_t j = 0; j < out; ++j) {
            float const alpha = std::abs(q[j * in]);
            for (std::size_t k = 0; k < in; ++k)
                if (std::abs(q[j * in + k]) != alpha)
                    throw invalid_input(where + " are not +-alpha per output channel (channel " + std::to_string(j) +
                                        " has " + std::to_string(alpha) + " and " + std::to_string(q[j * in + k]) +
                                        ")");
            r.w.scale[j] = alpha;
            r.step[j] = alpha;
        }
    } else {
        constexpr int bits = detail::level_policy_bits<P>::value;
        constexpr double levels = (1 << bits) - 1;
        r.w.bits = bits;
        r.w.codes.resize(q.size());
        for (std::size_t i = 0; i < q.size(); ++i) {
            double const u = (static_cast<double>(q[i]) + 1.0) * levels / 2.0;  // r, up to float rounding
            double const rounded = std::nearbyint(u);
            if (!(std::abs(u - rounded) < 1e-2) || rounded < 0.0 || rounded > levels)
                throw invalid_input(where + " are off the " + std::to_string(bits) + "-bit DoReFa grid (value " +
                                    std::to_string(q[i]) + ")");
            r.w.codes[i] = static_cast<std::int8_t>(static_cast<int>(rounded) - (1 << (bits - 1)));  // level 2c + 1
        }
        for (double& s : r.step) s = 1.0 / levels;
    }
    r.level_sum.assign(out, 0);
    for (std::size_t j = 0; j < out; ++j)
        for (std::size_t k = 0; k < in; ++k) r.level_sum[j] += r.w.level(j, k);
    r.bias.assign(bias.begin(), bias.end());
    return r;
}

/// A dense layer's weights in packed form (columns permuted by @p order when it is not empty).
template <PackableWeightPolicy P>
lowered_dense lower_dense(nn::dense<P>& d, char const* which, std::vector<std::size_t> const& order = {})
{
    return lower_weights(d.weight().policy(), d.weight().values(), d.options().out, d.options().in, order, d.bias(),
                         which);
}

/// The largest |v| of a layer whose inputs are at most @p input_max in magnitude.
/// @throws invalid_input when it could leave int32.
inline std::int64_t integer_bound(lowered_dense const& l, std::int64_t input_max)
{
    double const b = static_cast<double>(input_max * l.w.max_level()) * static_cast<double>(l.w.in);
    if (b >= 2147483647.0)
        throw invalid_input("lowbit::deploy::compile: " + std::to_string(l.w.in) + " inputs of " +
                            std::to_string(l.w.bits) + "-bit weights could overflow the int32 sums");
    return static_cast<std::int64_t>(b);
}

/// The thresholds of BN + sign after a layer whose pre-activation is y_j(v) = (a v + c D_j) step_j (+ bias_j),
/// for |v| <= v_max, with D_j = @p level_sum[j] (sum_k level_jk, or for a padded convolution the sum over a
/// pixel class's valid taps).
template <std::size_t Rank>
sign_thresholds fold_layer(nn::batch_norm<Rank> const& bn, lowered_dense const& l, double a, double c,
                           std::int64_t v_max, std::vector<std::int64_t> const& level_sum)
{
    if (bn.options().channels != l.w.out)
        throw invalid_input("lowbit::deploy::compile: a batch_norm of " + std::to_string(bn.options().channels) +
                            " channels follows a layer of " + std::to_string(l.w.out));
    return fold_sign_thresholds(bn, -v_max, v_max, [&](std::size_t j, std::int64_t v) {
        auto const y = static_cast<float>((a * static_cast<double>(v) + c * static_cast<double>(level_sum[j])) *
                                          l.step[j]);
        return l.bias.empty() ? y : y + l.bias[j];  // nn::dense and nn::conv2d add their bias to the float product
    });
}

/// fold_layer with the layer's own level sums.
template <std::size_t Rank>
sign_thresholds fold_layer(nn::batch_norm<Rank> const& bn, lowered_dense const& l, double a, double c,
                           std::int64_t v_max)
{
    return fold_layer(bn, l, a, c, v_max, l.level_sum);
}

/// The code rules of BN + ReLU + PACT (@p act) after a layer whose pre-activation is
/// y_j(v) = (a v + c D_j) step_j (+ bias_j), for |v| <= v_max, with D_j = @p level_sum[j] as in fold_layer.
template <std::size_t Rank, class Act>
level_thresholds fold_level_layer(nn::batch_norm<Rank> const& bn, Act const& act, lowered_dense const& l, double a,
                                  double c, std::int64_t v_max, std::vector<std::int64_t> const& level_sum)
{
    if (bn.options().channels != l.w.out)
        throw invalid_input("lowbit::deploy::compile: a batch_norm of " + std::to_string(bn.options().channels) +
                            " channels follows a layer of " + std::to_string(l.w.out));
    return fold_level_thresholds(bn, act, -v_max, v_max, [&](std::size_t j, std::int64_t v) {
        auto const y = static_cast<float>((a * static_cast<double>(v) + c * static_cast<double>(level_sum[j])) *
                                          l.step[j]);
        return l.bias.empty() ? y : y + l.bias[j];
    });
}

/// fold_level_layer with the layer's own level sums.
template <std::size_t Rank, class Act>
level_thresholds fold_level_layer(nn::batch_norm<Rank> const& bn, Act const& act, lowered_dense const& l, double a,
                                  double c, std::int64_t v_max)
{
    return fold_level_layer(bn, act, l, a, c, v_max, l.level_sum);
}

/// The sum of filter j's levels over the taps of @p taps (a padding class of the convolution @p s), for
/// every filter: the D_j(class) of a first convolution on input codes (deploy/padding_classes.hpp).
inline std::vector<std::int64_t> class_level_sums(lowered_dense const& l, kernels::binary_conv2d_shape const& s,
                                                  padding_classes::taps const& taps)
{
    std::vector<std::int64_t> d(s.filters, 0);
    for (std::size_t j = 0; j < s.filters; ++j)
        for (std::size_t ky = 0; ky < s.kernel; ++ky)
            for (std::size_t kx = 0; kx < s.kernel; ++kx)
                if (taps.has(ky, kx))
                    for (std::size_t c = 0; c < s.channels; ++c) d[j] += l.w.level(j, (ky * s.kernel + kx) * s.channels + c);
    return d;
}

} // namespace detail

} // namespace lowbit::deploy
