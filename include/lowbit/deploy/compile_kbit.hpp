// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::compile for the MLP with k-bit PACT activations: a trained
/// `nn::mlp(o, W, First, Last, ste::pact<Bits>{...}, nn::bias_head)` -> deploy::packed_kbit_mlp. This is the
/// overload of deploy::compile (deploy/compile.hpp, which includes this header) for models of that shape:
/// dense<First> - batch_norm - [relu - pact<Bits>] - dense<W> - batch_norm - [relu - pact<Bits>] - dense<Last>
/// with bias, Bits 1..8 (the codes are the int8 kernel's unsigned 8-bit operand), each weight policy binary or
/// ste::dorefa_weight<2..8> or another policy whose traits say so (PackableWeightPolicy).
///
/// Lowering (docs/deploy.md, "k-bit activations"), with n = 2^Bits - 1 and a = |alpha| of the PACT before a
/// layer, whose input is then a / n times the code q in 0..n:
/// - first layer: input codes of the input map, v = sum_k level_jk q_k (int8 kernel), pre-activation
///   y_j(v) = (scale v + offset sum_k level_jk) step_j, as in the binarized MLP;
/// - hidden layer: the k-bit codes of the layer before, v = sum_k level_jk q_k, y_j(v) = (a / n) step_j v;
/// - after each of those, BatchNorm + ReLU + PACT are n integer thresholds per channel found by
///   fold_level_thresholds with the model's own layers, so the packed codes are the fake-quant model's codes
///   of y_j(v) for every possible v;
/// - last layer: logits (a / n) step_j v + b_j, rounded once to float.
/// step_j is alpha_j for binary weights and 1 / (2^B - 1) for B-bit levels.
///
/// @code
/// auto model = lowbit::nn::mlp({.hidden = 256}, ste::dorefa_weight<2>{}, ste::dorefa_weight<8>{},
///                              ste::dorefa_weight<8>{}, ste::pact<4>{{.alpha = 4.0f}}, lowbit::nn::bias_head);
/// // ... train ...
/// lowbit::deploy::packed_kbit_mlp const packed = lowbit::deploy::compile(model);   // images in [0, 1]
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/compile_options.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_kbit_dense.hpp>
#include <lowbit/deploy/packed_kbit_mlp.hpp>
#include <lowbit/deploy/weight_lowering.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/quantize_activation.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/quant/ste/any_quantizer.hpp>
#include <lowbit/quant/ste/pact.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace lowbit::deploy {

namespace detail {

/// The layers of nn::mlp with k-bit code activations (CodeActivationLayer: PACT, CG-PACT, DoReFa, unsigned LSQ)
/// and the bias head, with its weight policies and the codes' bits.
template <class M>
struct kbit_mlp_parts : std::false_type {};
template <class First, class W, class Last, CodeActivationLayer Act>
struct kbit_mlp_parts<nn::sequential<nn::dense<First>, nn::batch_norm<2>, Act, nn::dense<W>, nn::batch_norm<2>, Act,
                                     nn::dense<Last>>> : std::true_type {
    using first = First;
    using hidden = W;
    using last = Last;
};

} // namespace detail

/// @brief Models of nn::mlp's shape with PACT activations and the bias head, any weight policies and any
/// PACT bit width: the models this overload of compile() takes (and refuses with a message unless the
/// weights are packable and Bits <= 8).
template <class M>
concept KbitMlpModel = detail::kbit_mlp_parts<M>::value;

/// @brief The packed inference model of a trained MLP with k-bit PACT activations; see the file comment.
/// @throws invalid_input when the input map is invalid, the weights are not on their policy's grid, PACT's
/// alpha is zero or not finite, or a layer is too wide for int32 sums.
template <KbitMlpModel Model>
packed_kbit_mlp compile(Model& model, compile_options const& options = {})
{
    using parts = detail::kbit_mlp_parts<Model>;
    using first = typename parts::first;
    using hidden = typename parts::hidden;
    using last = typename parts::last;
    // Policies chosen at run time (ste::any_quantizer) are checked when compile() lowers their layer.
    constexpr bool packable = detail::require_deployable<first>() && detail::require_deployable<hidden>() &&
                              detail::require_deployable<last>();
    if constexpr (packable) {
        options.input.check();
        detail::lowered_dense l0 = detail::lower_dense(model.template layer<0>(), "first");
        detail::lowered_dense l1 = detail::lower_dense(model.template layer<3>(), "hidden");
        detail::lowered_dense l2 = detail::lower_dense(model.template layer<6>(), "last");
        auto& act0 = model.template layer<2>();
        auto& act1 = model.template layer<5>();
        // Checked here for quantizers chosen at run time.
        int const bits = detail::common_code_bits("lowbit::deploy::compile", act0, act1);
        std::int64_t const n = (std::int64_t{1} << bits) - 1;
        // The real value of one unit of a code after each activation: a / n, with a the top code's value (PACT's
        // |alpha|).
        double const unit0 = static_cast<double>(detail::code_top(act0)) / static_cast<double>(n);
        double const unit1 = static_cast<double>(detail::code_top(act1)) / static_cast<double>(n);
        // |v| bounds (255 * max level * in for input codes, n * max level * in for k-bit codes); they also
        // reject layers whose sums could leave int32 before folding over them.
        std::int64_t const b0 = detail::integer_bound(l0, 255), b1 = detail::integer_bound(l1, n);
        (void)detail::integer_bound(l2, n);
        level_thresholds t0 = detail::fold_level_layer(model.template layer<1>(), act0, l0, options.input.scale,
                                                      options.input.offset, b0);
        level_thresholds t1 = detail::fold_level_layer(model.template layer<4>(), act1, l1, unit0, 0.0, b1);
        std::vector<double> scale(l2.w.out);
        for (std::size_t j = 0; j < scale.size(); ++j) scale[j] = unit1 * l2.step[j];
        std::vector<float> bias = std::move(l2.bias);
        bias.resize(l2.w.out, 0.0f);  // no bias: 0
        l0.w.scale.clear();  // folded into the thresholds and the logits' scale
        l1.w.scale.clear();
        l2.w.scale.clear();
        std::vector<packed_kbit_dense> layers;
        layers.emplace_back(std::move(l0.w), std::move(t0));
        layers.emplace_back(std::move(l1.w), std::move(t1));
        layers.emplace_back(std::move(l2.w), std::move(scale), std::move(bias));
        return packed_kbit_mlp(options.input, std::move(layers));
    }
    return {};
}

} // namespace lowbit::deploy
