// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The weight policies deploy::compile packs (BinaryWeightPolicy, LevelWeightPolicy,
/// PackableWeightPolicy), read only through policy_traits, and the lowering of a layer's quantized weights to
/// deploy::packed_weights that lower(nn::dense&) and lower(nn::conv2d&) use (lowbit::deploy::detail).
///
/// A layer is lowered from the values it evaluates with -- Q(w), as `weight().forward_values()` gives them in
/// evaluation -- whatever its policy (a lowbit::ste fake quantizer, lowbit::quantizer in shadow or packed
/// storage, a user's type) and whatever method trained it. Its grid (policy_traits) says which integers they
/// are: on a mid-rise grid every value is (k + 1/2) s_j, an odd integer 2k + 1 times s_j / 2; on a mid-tread
/// grid k s_j, the integer k times s_j. The step s_j, one per output channel (or one per tensor, by the policy's
/// granularity), is found from the values themselves: the largest step that puts every value on the grid within
/// the bit width; any such step represents Q(w) exactly. Binary weights are stored as one sign bit per weight and
/// alpha_j = s_j / 2, the others as int8 codes c = k: level 2c + 1 and unit s_j / 2 (mid-rise), or level c and
/// unit s_j (mid-tread).
///
/// @code
/// static_assert(lowbit::deploy::PackableWeightPolicy<lowbit::ste::xnor_weight<>>);
/// static_assert(lowbit::deploy::LevelWeightPolicy<lowbit::ste::dorefa_weight<8>>);
/// using sr1 = lowbit::quantizer<1, lowbit::stochastic_t, lowbit::clip::fixed_range>;   // SR-trained binary
/// static_assert(lowbit::deploy::BinaryWeightPolicy<sr1>);
/// static_assert(lowbit::deploy::LevelWeightPolicy<lowbit::ste::twn_weight<>>);          // ternary: integer levels
/// static_assert(!lowbit::deploy::PackableWeightPolicy<lowbit::nn::float_weights_t>);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/padding_classes.hpp>
#include <lowbit/deploy/pool_window.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/kernels/binary_conv2d.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/conv2d.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/max_pool2d.hpp>
#include <lowbit/quant/policy_info.hpp>
#include <lowbit/quant/policy_traits.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace lowbit::deploy {

/// @brief Whether weights with the traits @p i pack, the rule every packable policy follows: binary (the two
/// levels +-s/2), or 2..8 bits on a grid whose levels fit int8 codes -- mid-rise (k + 1/2) s over the full
/// signed range, stored as odd levels 2c + 1, or mid-tread k s with -2^(B-1) <= k <= 2^(B-1) - 1 (ternary,
/// symmetric odd, two's complement), stored as the integers c = k. Its compile-time form is
/// PackableWeightPolicy; a policy chosen at run time is checked with this when compile() meets it.
constexpr bool packable(policy_info const& i) noexcept
{
    if (!i.quantizes() || i.bits < 1 || i.bits > 8) return false;
    int const half = 1 << (i.bits - 1);
    if (i.levels.offset == 0.5f) return i.levels == level_range{-half, half - 1, 0.5f};  // binary at 1 bit
    return i.bits >= 2 && i.levels.offset == 0.0f && i.levels.qmin >= -half && i.levels.qmin <= 0 &&
           i.levels.qmax >= 0 && i.levels.qmax <= half - 1;
}

/// @brief Weight policies that compile() packs as sign bits with a scale per channel: a grid of the two
/// levels +-s/2 (grid::binary, or grid::symmetric_even at 1 bit). ste::xnor_weight, ste::dorefa_weight<1>,
/// lowbit::quantizer<1, ...>, and a user's policy whose policy_traits say so.
template <class P>
concept BinaryWeightPolicy = QuantizingPolicy<P> && (bit_width_v<P> == 1) && (levels_v<P> == level_range{-1, 0, 0.5f});

/// @brief Weight policies that compile() packs as levels in int8 codes: B = 2..8 bits on a mid-rise grid of
/// 2^B levels (grid::symmetric_even: ste::dorefa_weight<B>, lowbit::quantizer<B, R, C, grid::symmetric_even>)
/// or on a mid-tread grid (grid::symmetric_odd: ste::twn_weight, ste::uniform_weight, SQWA's quantizer;
/// grid::signed_int: ste::lsq<B>), as `packable` says.
template <class P>
concept LevelWeightPolicy = QuantizingPolicy<P> && (bit_width_v<P> >= 2) && packable(policy_info_of<P>());  // 2..8

/// @brief Weight policies compile() supports in any position: BinaryWeightPolicy or LevelWeightPolicy.
template <class P>
concept PackableWeightPolicy = BinaryWeightPolicy<P> || LevelWeightPolicy<P>;

/// @brief The weight policies compile() takes: packable ones, and those that know their traits only at run
/// time (ste::any_quantizer, as lowbit-train builds its models), which compile() checks when it meets them.
template <class P>
concept DeployableWeightPolicy = PackableWeightPolicy<P> || RuntimeDescribedPolicy<P>;

namespace detail {

/// compile()'s check of a layer's weight policy P, one message for every model kind (the compiler names P in
/// the instantiation that fails). Returns whether P deploys, for the `if constexpr` that follows it.
template <class P>
consteval bool require_deployable()
{
    static_assert(DeployableWeightPolicy<P>,
                  "lowbit::deploy::compile: a layer's weights must be quantized on a grid whose levels fit int8 "
                  "codes, as policy_traits reads it: binary (ste::xnor_weight, lowbit::quantizer<1, ...>), or 2..8 "
                  "bits mid-rise (ste::dorefa_weight<Bits>, grid::symmetric_even) or mid-tread (ste::twn_weight, "
                  "ste::uniform_weight, grid::symmetric_odd, grid::signed_int); float weights have no packed form");
    return DeployableWeightPolicy<P>;
}

/// A dense layer's quantized weights in packed form, plus what the folding needs.
struct lowered_dense {
    packed_weights w;
    std::vector<double> step;             ///< per channel: the real value of level 1 (alpha_j, or s_j / 2)
    std::vector<std::int64_t> level_sum;  ///< per channel: sum_k level_jk
    std::vector<float> bias;              ///< the layer's bias, empty without one
};

/// The values a layer's weight evaluates with: Q(w) for a quantizing policy in shadow or packed state. A layer
/// with a bias asks for the evaluation form (@p fold), in which SAT's rescaled policy gives the unscaled Q(w)
/// and the layer divides its bias by the scale (evaluated_bias), as nn::dense does.
template <class Weight>
std::vector<float> evaluated_values(Weight& w, bool fold)
{
    std::span<float const> const q = w.forward_values(nn::forward_context{.training = false}, fold);
    return {q.begin(), q.end()};
}

/// The step s_j of each of @p out rows of @p q (out x in) on a grid with @p l: the largest step for which every
/// value of the row is (k + offset) s_j with k in [qmin, qmax], up to float rounding (0 for a row of zeros).
/// @throws invalid_input naming the layer and a value when a row is on no such grid.
inline std::vector<double> grid_steps(std::vector<float> const& q, std::size_t out, std::size_t in, level_range l,
                                      std::string const& where)
{
    // The magnitudes |k + offset| a row's largest value may take, smallest first (largest step first).
    std::vector<double> magnitudes;
    for (int k = l.qmin; k <= l.qmax; ++k) {
        double const m = std::abs(static_cast<double>(k) + static_cast<double>(l.offset));
        if (m > 0.0) magnitudes.push_back(m);
    }
    std::sort(magnitudes.begin(), magnitudes.end());
    magnitudes.erase(std::unique(magnitudes.begin(), magnitudes.end()), magnitudes.end());
    std::vector<double> steps(out, 0.0);
    for (std::size_t j = 0; j < out; ++j) {
        std::span<float const> const row(q.data() + j * in, in);
        double largest = 0.0;
        for (float const v : row) {
            if (!std::isfinite(v))
                throw invalid_input(where + " are not finite (channel " + std::to_string(j) + ")");
            largest = std::max(largest, std::abs(static_cast<double>(v)));
        }
        if (largest == 0.0) continue;  // an all-zero channel (XNOR's alpha = 0): step 0, every level stands for 0
        bool found = false;
        for (double const m : magnitudes) {
            double const s = largest / m;
            bool const fits = std::all_of(row.begin(), row.end(), [&](float v) {
                double const u = static_cast<double>(v) / s - static_cast<double>(l.offset);
                double const k = std::nearbyint(u);
                return std::abs(u - k) < 1e-3 && k >= l.qmin && k <= l.qmax;
            });
            if (fits) {
                steps[j] = s;
                found = true;
                break;
            }
        }
        if (!found)
            throw invalid_input(where + " of channel " + std::to_string(j) + " are not on a " +
                                std::to_string(l.count()) + "-level grid (did the layer evaluate with float weights? "
                                "A model trained with train::full_precision, or with stochastic BinaryConnect, which "
                                "evaluates with the real-valued weights, has no packed form)");
    }
    return steps;
}

/// The packed form of a layer's evaluation weights @p q = Q(w) (out x in, row-major) on the grid @p info says,
/// with the columns then taken in @p order (column k of the result is column order[k] of the layer; empty:
/// unchanged), so that a convolution's patches and a flattened feature map can be read in the packed model's
/// layout.
inline lowered_dense lower_weights(std::vector<float> q, std::optional<policy_info> const& info,
                                   std::size_t out, std::size_t in, std::vector<std::size_t> const& order,
                                   std::span<float const> bias, std::string const& which)
{
    std::string const where = "lowbit::deploy::compile: " + which + "'s weights";
    if (!info)
        throw invalid_input(where + " follow a policy that states no policy_traits, so compile() cannot tell their "
                            "grid");
    if (!packable(*info))
        throw invalid_input(where + " are " +
                            (info->quantizes() ? std::to_string(info->bits) + "-bit on a grid of levels " +
                                                     (info->levels.offset == 0.0f ? "" : "1/2 + ") + "[" +
                                                     std::to_string(info->levels.qmin) + ", " +
                                                     std::to_string(info->levels.qmax) + "] times a step"
                                               : std::string("float")) +
                            ", which has no packed form: packed weights are binary, or 2..8 bits whose levels fit "
                            "int8 codes (mid-rise grid::symmetric_even, mid-tread grid::symmetric_odd or "
                            "grid::signed_int)");
    level_range const levels = info->levels;
    if (q.size() != out * in)
        throw invalid_input(where + ": " + std::to_string(q.size()) + " values for " + std::to_string(out) + " x " +
                            std::to_string(in));
    if (!order.empty()) {
        if (order.size() != in)  // the caller's invariant (lower(nn::dense&) checks it with a message of its own)
            throw invalid_input(where + ": a column order of " + std::to_string(order.size()) + " for " +
                                std::to_string(in) + " inputs");
        std::vector<float> const layer = std::move(q);
        q.resize(layer.size());
        for (std::size_t j = 0; j < out; ++j)
            for (std::size_t k = 0; k < in; ++k) q[j * in + k] = layer[j * in + order[k]];
    }
    // One step per output channel, or one for the whole tensor when the policy's granularity says so.
    std::vector<double> s;
    if (info->per_channel)
        s = grid_steps(q, out, in, levels, where);
    else
        s.assign(out, grid_steps(q, 1, out * in, levels, where).front());
    lowered_dense r;
    r.w.in = in;
    r.w.out = out;
    r.w.bits = info->bits;
    r.step.resize(out);
    r.w.scale.resize(out);
    bool const mid_rise = levels.offset != 0.0f;
    r.w.odd = mid_rise;
    for (std::size_t j = 0; j < out; ++j) {
        r.step[j] = mid_rise ? s[j] / 2.0 : s[j];  // level 2k + 1 stands for (k + 1/2) s_j; level k for k s_j
        r.w.scale[j] = static_cast<float>(r.step[j]);
    }
    // Odd levels whose unit is packed_weights' default, 1 / (2^B - 1) (DoReFa's), leave the scale implicit.
    if (r.w.bits > 1 && mid_rise &&
        std::all_of(r.step.begin(), r.step.end(), [&](double u) { return u == r.w.step(); }))
        r.w.scale.clear();
    if (r.w.bits == 1) {
        r.w.signs.assign(out * r.w.words(), 0);
        // sign(Q(w)): bit !(q < 0), sign(0) = +1 as the policies' sign_pos.
        kernels::pack_sign_rows(q.data(), out, in, in, r.w.signs.data(), r.w.words());
    } else {
        r.w.codes.resize(q.size());
        for (std::size_t j = 0; j < out; ++j)
            for (std::size_t k = 0; k < in; ++k) {
                double const u = s[j] == 0.0 ? 0.0 : static_cast<double>(q[j * in + k]) / s[j] - levels.offset;  // k
                r.w.codes[j * in + k] = static_cast<std::int8_t>(std::nearbyint(u));
            }
    }
    r.level_sum.assign(out, 0);
    for (std::size_t j = 0; j < out; ++j)
        for (std::size_t k = 0; k < in; ++k) r.level_sum[j] += r.w.level(j, k);
    r.bias.assign(bias.begin(), bias.end());
    return r;
}

/// The bias a layer adds in evaluation, after evaluated_values: its own, divided by the scale its weight policy
/// folded out of Q(w) (SAT's rescaled layer, see nn::weight::folds_scale_into_bias), as nn::dense does.
template <class Weight>
std::vector<float> evaluated_bias(Weight const& w, std::span<float const> bias)
{
    float const s = w.eval_output_scale();
    std::vector<float> b(bias.begin(), bias.end());
    if (s != 1.0f)
        for (float& v : b) v /= s;
    return b;
}

/// A dense layer's weights in packed form (columns permuted by @p order when it is not empty).
template <DeployableWeightPolicy P>
lowered_dense lower_dense(nn::dense<P>& d, char const* which, std::vector<std::size_t> const& order = {})
{
    std::vector<float> q = evaluated_values(d.weight(), !d.bias().empty());  // before evaluated_bias: it sets the scale
    return lower_weights(std::move(q), describe(d.weight().policy()), d.options().out, d.options().in, order,
                         evaluated_bias(d.weight(), d.bias()), which);
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

/// The window of a max pooling layer.
inline pool_window pool_of(nn::max_pool2d const& pool) noexcept
{
    nn::pool_options const o = pool.options();
    return {.kernel = o.kernel, .stride = o.stride};
}

/// A convolution's weight columns in the packed patch order (ky, kx, c): column (ky k + kx) C + c is
/// nn::conv2d's [in][k][k] index c k^2 + ky k + kx.
inline std::vector<std::size_t> patch_order(std::size_t channels, std::size_t k)
{
    std::vector<std::size_t> order(channels * k * k);
    for (std::size_t ky = 0; ky < k; ++ky)
        for (std::size_t kx = 0; kx < k; ++kx)
            for (std::size_t c = 0; c < channels; ++c) order[(ky * k + kx) * channels + c] = (c * k + ky) * k + kx;
    return order;
}

template <class P>
kernels::binary_conv2d_shape conv_shape(nn::conv2d<P>& conv, std::size_t height, std::size_t width)
{
    nn::conv2d_options const& o = conv.options();
    return {.channels = o.in, .height = height, .width = width, .filters = o.out, .kernel = o.kernel,
            .stride = o.stride, .padding = o.padding};
}

/// A convolution's geometry for a @p height x @p width input, and its weights lowered in the packed patch
/// order (ky, kx, c).
struct lowered_conv {
    kernels::binary_conv2d_shape shape;
    lowered_dense weights;
};

template <class P>
lowered_conv lower_conv(nn::conv2d<P>& conv, std::size_t height, std::size_t width, std::string const& which)
{
    kernels::binary_conv2d_shape const s = conv_shape(conv, height, width);
    if (s.height + 2 * s.padding < s.kernel || s.width + 2 * s.padding < s.kernel)
        throw invalid_input("lowbit::deploy::compile: " + which + "'s " + std::to_string(height) + "x" +
                            std::to_string(width) + " input is smaller than its kernel");
    return {s, lower_weights(evaluated_values(conv.weight(), false), describe(conv.weight().policy()), s.filters,
                             s.patch_bits(), patch_order(s.channels, s.kernel), conv.bias(), which)};
}

} // namespace detail

} // namespace lowbit::deploy
