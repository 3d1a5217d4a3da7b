// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::compile: a trained binarized MLP (lowbit::nn) -> a packed inference model
/// (deploy::packed_mlp) that runs on the integer kernels. The overloads for the binarized CNN (-> packed_cnn),
/// the MLP with k-bit PACT activations (-> packed_kbit_mlp) and the CNN with k-bit PACT activations
/// (-> packed_kbit_cnn) are in deploy/compile_cnn.hpp, deploy/compile_kbit.hpp and deploy/compile_kbit_cnn.hpp,
/// included here: compile() is the one entry point for all four.
///
/// What it takes: the model of
/// `nn::mlp(options, W, First, Last, ste::sign_activation{}, nn::bias_head)`, i.e.
/// dense<First> - batch_norm - sign - dense<W> - batch_norm - sign - dense<Last> with bias, where each weight
/// policy is binary or B-bit on a grid whose levels fit int8 codes, mid-rise or mid-tread, as policy_traits reads
/// it (PackableWeightPolicy: ste::xnor_weight, ste::dorefa_weight<Bits>, ste::twn_weight, lowbit::quantizer<1,
/// ...> trained with any method that evaluates with Q(w) -- BC with deterministic rounding, SR, R -- a user's
/// policy that states its traits, or ste::any_quantizer, checked when compile() meets it). The BNN recipe
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
#include <lowbit/deploy/compile_cnn.hpp>
#include <lowbit/deploy/compile_kbit.hpp>
#include <lowbit/deploy/compile_kbit_cnn.hpp>
#include <lowbit/deploy/compile_options.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/lower.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/packed_mlp.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/deploy/weight_lowering.hpp>
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

} // namespace detail

/// @brief The packed inference model of @p model: for the binarized MLP of the file comment a packed_mlp; for
/// nn::mlp with k-bit activations and for nn::cnn the overloads of deploy/compile_kbit.hpp,
/// deploy/compile_cnn.hpp and deploy/compile_kbit_cnn.hpp; for any other nn::sequential whose layers lower
/// (deploy/lower.hpp: a user's own depth, residual blocks, float activations after binary weights) a
/// packed_model. A layer that does not lower is a compile-time error naming it.
/// @throws invalid_input when the input map is invalid, the weights are not on their policy's grid, or a
/// layer is too wide for int32 sums.
template <class Model>
auto compile(Model& model, compile_options const& options = {})
{
    using parts = detail::mlp_parts<Model>;
    if constexpr (!parts::value) {
        return lower_model(model, options);
    } else {
        using first = typename parts::first;
        using hidden = typename parts::hidden;
        using last = typename parts::last;
        // Policies chosen at run time (ste::any_quantizer) are checked when compile() lowers their layer.
        constexpr bool deployable = detail::require_deployable<first>() && detail::require_deployable<hidden>() &&
                                    detail::require_deployable<last>();
        if constexpr (deployable) {
            options.input.check();
            detail::lowered_dense l0 = detail::lower_dense(model.template layer<0>(), "first");
            detail::lowered_dense l1 = detail::lower_dense(model.template layer<3>(), "hidden");
            detail::lowered_dense l2 = detail::lower_dense(model.template layer<6>(), "last");
            // |v| bounds: 255 * max level * in for input codes, max level * in for sign bits. packed_dense's
            // constructor rejects layers whose bounds leave int32, so check before folding over them.
            auto const bound = detail::integer_bound;
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
        } else {
            return packed_mlp{};
        }
    }
}

} // namespace lowbit::deploy
