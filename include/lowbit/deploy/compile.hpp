// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::compile: a trained binarized MLP (lowbit::nn) -> a packed inference model
/// (deploy::packed_mlp) that runs on the integer kernels.
///
/// What it takes: the model of
/// `nn::mlp(options, W, First, Last, ste::sign_activation{}, nn::bias_head)`, i.e.
/// dense<First> - batch_norm - sign - dense<W> - batch_norm - sign - dense<Last> with bias, where each weight
/// policy is binary (ste::xnor_weight, per channel or per tensor, or ste::dorefa_weight<1>) or
/// ste::dorefa_weight<Bits> with Bits 2..8 (odd levels in int8 codes). The BNN recipe
/// `nn::mlp(o, ste::xnor_weight<>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
/// nn::bias_head)` is the case the issue names. Anything else is a compile-time error that says what is
/// supported.
///
/// What it does, layer by layer (docs/deploy.md has the derivation):
/// - weights: Q(w) is computed with a copy of each layer's own policy, as the evaluation forward of a
///   BinaryConnect-trained (shadow-weight) model does, and stored as sign bits plus alpha_j, or as codes;
/// - first layer: the float input becomes 8-bit codes by the input map of compile_options (x = scale q +
///   offset); the int8 kernel computes v = sum_k q_k level_jk exactly, and the pre-activation is
///   y_j(v) = (scale v + offset sum_k level_jk) step_j, rounded once to float;
/// - BatchNorm + sign after the first and hidden layers: per-channel integer thresholds on v, found by
///   fold_sign_thresholds with the model's own batch_norm code, so that the packed sign equals
///   sign(BN(y_j(v))) in float for every possible v;
/// - hidden layer: XNOR-popcount on sign bits, y_j(v) = alpha_j v;
/// - last layer: sign bits x weights, then logits alpha_j v + b_j (binary) or v / (2^Bits - 1) + b_j.
///
/// @code
/// namespace ste = lowbit::ste;
/// auto model = lowbit::nn::mlp({.hidden = 1024}, ste::xnor_weight<>{}, ste::dorefa_weight<8>{},
///                              ste::dorefa_weight<8>{}, ste::sign_activation{}, lowbit::nn::bias_head);
/// // ... train it with lowbit::train::binary_connect ...
/// lowbit::deploy::packed_mlp const packed = lowbit::deploy::compile(model);   // images in [0, 1]
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/packed_mlp.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/quantize_activation.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/quant/granularity.hpp>
#include <lowbit/quant/ste/any_quantizer.hpp>
#include <lowbit/quant/ste/dorefa_weight.hpp>
#include <lowbit/quant/ste/sign_activation.hpp>
#include <lowbit/quant/ste/xnor_weight.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief Options of compile().
struct compile_options {
    /// How the float input maps to the first layer's 8-bit codes. The default, scale 1/255 and offset 0, is
    /// exact for images in [0, 1] (lowbit::data's Fashion-MNIST); input_map::calibrate(batch) gives it from
    /// data, and lowbit-infer sets it to lowbit-train's standardisation.
    deploy::input_map input{};
};

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

/// The layers of the binarized MLP compile() takes, with its three weight policies.
template <class M>
struct mlp_parts : std::false_type {};
template <class First, class W, class Last>
struct mlp_parts<nn::sequential<nn::dense<First>, nn::batch_norm<2>, nn::quantize_activation<ste::sign_activation>,
                                nn::dense<W>, nn::batch_norm<2>, nn::quantize_activation<ste::sign_activation>,
                                nn::dense<Last>>> : std::true_type {
    using first = First;
    using hidden = W;
    using last = Last;
};

/// A dense layer's quantized weights in packed form, plus what the folding needs.
struct lowered_dense {
    packed_weights w;
    std::vector<double> step;             ///< per channel: alpha_j (binary) or 1 / (2^Bits - 1)
    std::vector<std::int64_t> level_sum;  ///< per channel: sum_k level_jk
    std::vector<float> bias;              ///< the layer's bias, empty without one
};

template <PackableWeightPolicy P>
lowered_dense lower_dense(nn::dense<P>& d, char const* which)
{
    std::size_t const out = d.options().out, in = d.options().in;
    std::vector<float> const values = d.weight().values();
    P policy = d.weight().policy();  // a copy: its forward keeps state, and Q(w) is what the model evaluates with
    std::vector<float> q(values.size());
    policy.forward(values, q);
    lowered_dense r;
    r.w.in = in;
    r.w.out = out;
    r.step.resize(out);
    std::string const where = std::string("lowbit::deploy::compile: the ") + which + " layer's weights";
    if constexpr (BinaryWeightPolicy<P>) {
        r.w.bits = 1;
        r.w.signs.assign(out * r.w.words(), 0);
        // sign(w) with sign(0) = +1 is bit !(w < 0), as the policies' sign_pos; alpha_j = |Q(w)| of the row.
        kernels::pack_sign_rows(values.data(), out, in, in, r.w.signs.data(), r.w.words());
        r.w.scale.resize(out);
        for (std::size_t j = 0; j < out; ++j) {
            float const alpha = std::abs(q[j * in]);
            for (std::size_t k = 0; k < in; ++k)
                if (std::abs(q[j * in + k]) != alpha)
                    throw invalid_input(where + " are not +-alpha per output channel (channel " + std::to_string(j) +
                                        " has " + std::to_string(alpha) + " and " + std::to_string(q[j * in + k]) + ")");
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
    auto const b = d.bias();
    r.bias.assign(b.begin(), b.end());
    return r;
}

/// The thresholds of BN + sign after a layer whose pre-activation is y_j(v) = (a v + c sum_k level_jk) step_j
/// (+ bias_j), for |v| <= v_max.
inline sign_thresholds fold_layer(nn::batch_norm<2> const& bn, lowered_dense const& l, double a, double c,
                                  std::int64_t v_max)
{
    if (bn.options().channels != l.w.out)
        throw invalid_input("lowbit::deploy::compile: a batch_norm of " + std::to_string(bn.options().channels) +
                            " channels follows a dense layer of " + std::to_string(l.w.out));
    return fold_sign_thresholds(bn, -v_max, v_max, [&](std::size_t j, std::int64_t v) {
        auto const y = static_cast<float>((a * static_cast<double>(v) + c * static_cast<double>(l.level_sum[j])) *
                                          l.step[j]);
        return l.bias.empty() ? y : y + l.bias[j];  // nn::dense adds its bias to the float product
    });
}

} // namespace detail

/// @brief The packed inference model of a trained binarized MLP; see the file comment for what is supported
/// and how each layer is lowered.
/// @throws invalid_input when the input map is invalid, the weights are not on their policy's grid, or a
/// layer is too wide for int32 sums.
template <class Model>
packed_mlp compile(Model& model, compile_options const& options = {})
{
    using parts = detail::mlp_parts<Model>;
    static_assert(parts::value,
                  "lowbit::deploy::compile supports the binarized MLP of nn::mlp(options, W, First, Last, "
                  "ste::sign_activation{}, nn::bias_head): dense - batch_norm - sign - dense - batch_norm - sign - dense "
                  "with bias; other models (ReLU or float activations, the batch_norm head, CNNs) have no packed form "
                  "yet");
    if constexpr (parts::value) {
        using first = typename parts::first;
        using hidden = typename parts::hidden;
        using last = typename parts::last;
        constexpr bool erased = std::same_as<first, ste::any_quantizer> || std::same_as<hidden, ste::any_quantizer> ||
                                std::same_as<last, ste::any_quantizer>;
        static_assert(!erased, "lowbit::deploy::compile needs the concrete weight quantizers in the model's type: "
                               "ste::any_quantizer chooses at run time; build the model with ste::xnor_weight<> / "
                               "ste::dorefa_weight<Bits> (as lowbit-infer does) and load the checkpoint into it");
        static_assert(erased || PackableWeightPolicy<first>,
                      "lowbit::deploy::compile: the first layer's weights must be binary (ste::xnor_weight, "
                      "ste::dorefa_weight<1>) or ste::dorefa_weight<Bits> with Bits 2..8");
        static_assert(erased || PackableWeightPolicy<hidden>,
                      "lowbit::deploy::compile: the hidden layer's weights must be binary (ste::xnor_weight, "
                      "ste::dorefa_weight<1>) or ste::dorefa_weight<Bits> with Bits 2..8");
        static_assert(erased || PackableWeightPolicy<last>,
                      "lowbit::deploy::compile: the last layer's weights must be binary (ste::xnor_weight, "
                      "ste::dorefa_weight<1>) or ste::dorefa_weight<Bits> with Bits 2..8");
        if constexpr (!erased && PackableWeightPolicy<first> && PackableWeightPolicy<hidden> &&
                      PackableWeightPolicy<last>) {
            options.input.check();
            detail::lowered_dense l0 = detail::lower_dense(model.template layer<0>(), "first");
            detail::lowered_dense l1 = detail::lower_dense(model.template layer<3>(), "hidden");
            detail::lowered_dense l2 = detail::lower_dense(model.template layer<6>(), "last");
            // |v| bounds: 255 * max level * in for input codes, max level * in for sign bits. packed_dense's
            // constructor rejects layers whose bounds leave int32, so check before folding over them.
            auto const bound = [](detail::lowered_dense const& l, std::int64_t input_max) {
                double const b = static_cast<double>(input_max * l.w.max_level()) * static_cast<double>(l.w.in);
                if (b >= 2147483647.0)
                    throw invalid_input("lowbit::deploy::compile: " + std::to_string(l.w.in) + " inputs of " +
                                        std::to_string(l.w.bits) + "-bit weights could overflow the int32 sums");
                return static_cast<std::int64_t>(b);
            };
            sign_thresholds t0 = detail::fold_layer(model.template layer<1>(), l0, options.input.scale,
                                                    options.input.offset, bound(l0, 255));
            sign_thresholds t1 = detail::fold_layer(model.template layer<4>(), l1, 1.0, 0.0, bound(l1, 1));
            l0.w.scale.clear();  // folded into the thresholds
            l1.w.scale.clear();
            std::vector<float> bias = std::move(l2.bias);
            bias.resize(l2.w.out, 0.0f);  // no bias: 0
            std::vector<packed_dense> layers;
            layers.emplace_back(layer_input::codes, std::move(l0.w), std::move(t0));
            layers.emplace_back(layer_input::signs, std::move(l1.w), std::move(t1));
            layers.emplace_back(layer_input::signs, std::move(l2.w), std::move(bias));
            return packed_mlp(options.input, std::move(layers));
        }
    }
    return {};
}

} // namespace lowbit::deploy
