// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::compile for the CNN with k-bit PACT activations: a trained
/// `nn::cnn(o, W, First, Last, ste::pact<Bits>{...}, nn::bias_head)` -> deploy::packed_kbit_cnn. This is the
/// overload of deploy::compile (deploy/compile.hpp, which includes this header) for nn::cnn's shape
/// (deploy/compile_cnn.hpp) whose five activations are the same PACT activation, ReLU then ste::pact<Bits>,
/// Bits 1..8 (CG-PACT's alpha_gradient::calibrated too: the forward pass is the same), with the bias head;
/// each weight policy binary or on a mid-rise or mid-tread grid of 2..8 bits (PackableWeightPolicy).
///
/// Lowering (docs/deploy.md, "k-bit activations"), with n = 2^Bits - 1 and a = |alpha| of the PACT before a
/// layer, whose input is then a / n times the code q in 0..n:
/// - first convolution: input codes of the input map, v = sum over the valid taps of level q (im2col, code 0 at
///   padded taps, int8 GEMM); y_j(v) = (scale v + offset D_j(class)) step_j + b_j, D_j(class) filter j's levels
///   over the valid taps of the pixel's padding class: one set of level thresholds per class;
/// - other convolutions: the k-bit codes of the layer before, y_j(v) = (a / n) step_j v + b_j, exact at padded
///   taps (code 0 is 0.0): one set;
/// - max pooling: the byte-wise maximum of the codes (PACT is monotone, so it commutes with max);
/// - flatten: the NHWC code rows as they are; the dense layer's weight columns are permuted from nn::flatten's
///   (c, y, x) order to (y, x, c);
/// - hidden dense: as the k-bit MLP's hidden layer; last: logits (a / n) step_j v + b_j, rounded once.
/// BatchNorm + ReLU + PACT become n integer thresholds per channel (fold_level_thresholds with the model's own
/// layers), so the packed codes are the fake-quant model's codes of y_j(v) for every possible v.
///
/// @code
/// namespace ste = lowbit::ste;
/// auto cnn = lowbit::nn::cnn({}, ste::dorefa_weight<2>{}, ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{},
///                            ste::pact<4>{{.alpha = 4.0f}}, lowbit::nn::bias_head);
/// // ... train ...
/// lowbit::deploy::packed_kbit_cnn const packed = lowbit::deploy::compile(cnn);   // images in [0, 1]
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/compile_cnn.hpp>
#include <lowbit/deploy/compile_options.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_kbit_cnn.hpp>
#include <lowbit/deploy/packed_kbit_conv2d.hpp>
#include <lowbit/deploy/packed_kbit_dense.hpp>
#include <lowbit/deploy/padding_classes.hpp>
#include <lowbit/deploy/weight_lowering.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/conv2d.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace lowbit::deploy {

namespace detail {

/// Lowers a conv - BN - ReLU - PACT block of size @p height x @p width. The first layer (@p map non-null)
/// reads input codes and gets one set of thresholds per padding class; the others read the k-bit codes of a
/// PACT whose code unit is @p unit (a / n) and whose largest code is @p max_code.
template <class P, class Act>
packed_kbit_conv2d lower_kbit_conv_block(nn::conv2d<P>& conv, nn::batch_norm<4> const& bn, Act const& act,
                                         std::size_t height, std::size_t width, input_map const* map, double unit,
                                         std::int64_t max_code, std::string const& which)
{
    auto [s, l] = lower_conv(conv, height, width, which);
    std::vector<level_thresholds> t;
    if (map != nullptr) {
        std::int64_t const v_max = integer_bound(l, 255);
        for (padding_classes::taps const& taps : padding_classes::of(s).valid)
            t.push_back(fold_level_layer(bn, act, l, map->scale, map->offset, v_max, class_level_sums(l, s, taps)));
    } else {
        t.push_back(fold_level_layer(bn, act, l, unit, 0.0, integer_bound(l, max_code)));
    }
    l.w.scale.clear();  // folded into the thresholds
    return packed_kbit_conv2d(s, std::move(l.w), std::move(t));
}

} // namespace detail

/// @brief Models of nn::cnn's shape with the same code activation everywhere (CodeActivationLayer: PACT,
/// CG-PACT, DoReFa, unsigned LSQ, Bits 1..8, or one chosen at run time) and the bias head, any weight policies:
/// the models this overload of compile() takes (and refuses with a message unless the weights are packable).
template <class M>
concept KbitCnnModel = CnnModel<M> && detail::cnn_parts<M>::kbit;

/// @brief The packed inference model of a trained CNN with k-bit PACT activations; see the file comment.
/// @throws invalid_input when the input map is invalid, the image size cannot be inferred or does not fit the
/// dense layer, the weights are not on their policy's grid, PACT's alpha is zero or not finite, or a layer is
/// too wide for int32 sums.
template <KbitCnnModel Model>
packed_kbit_cnn compile(Model& model, compile_options const& options = {})
{
    using parts = detail::cnn_parts<Model>;
    using policies = typename parts::policies;
    // Policies chosen at run time (ste::any_quantizer) are checked when compile() lowers their layer.
    constexpr bool packable = detail::all_deployable(static_cast<policies*>(nullptr));
    if constexpr (packable) {
        options.input.check();
        auto& b1 = model.template layer<0>();
        auto& b2 = model.template layer<1>();
        auto& b3 = model.template layer<3>();
        auto& b4 = model.template layer<4>();
        auto& act5 = model.template layer<9>();
        // One code width (checked here for quantizers chosen at run time).
        int const bits = detail::common_code_bits("lowbit::deploy::compile", b1.template layer<2>(),
                                                  b2.template layer<2>(), b3.template layer<2>(),
                                                  b4.template layer<2>(), act5);
        std::int64_t const n = (std::int64_t{1} << bits) - 1;
        // The real value of one unit of a code after an activation: a / n, with a the top code's value (PACT's
        // |alpha|).
        auto const unit = [&](auto& act) { return static_cast<double>(detail::code_top(act)) / static_cast<double>(n); };
        detail::cnn_layout const g = detail::cnn_layout_of(model, options);
        std::vector<packed_kbit_conv2d> convs;
        convs.push_back(detail::lower_kbit_conv_block(b1.template layer<0>(), b1.template layer<1>(),
                                                      b1.template layer<2>(), g.heights[0], g.widths[0],
                                                      &options.input, 0.0, 255, "first"));
        convs.push_back(detail::lower_kbit_conv_block(b2.template layer<0>(), b2.template layer<1>(),
                                                      b2.template layer<2>(), g.heights[1], g.widths[1], nullptr,
                                                      unit(b1.template layer<2>()), n, "second"));
        convs.push_back(detail::lower_kbit_conv_block(b3.template layer<0>(), b3.template layer<1>(),
                                                      b3.template layer<2>(), g.heights[2], g.widths[2], nullptr,
                                                      unit(b2.template layer<2>()), n, "third"));
        convs.push_back(detail::lower_kbit_conv_block(b4.template layer<0>(), b4.template layer<1>(),
                                                      b4.template layer<2>(), g.heights[3], g.widths[3], nullptr,
                                                      unit(b3.template layer<2>()), n, "fourth"));
        detail::lowered_dense l5 = detail::lower_dense(model.template layer<7>(), "hidden dense", g.flatten_order);
        detail::lowered_dense l6 = detail::lower_dense(model.template layer<10>(), "last");
        level_thresholds t5 = detail::fold_level_layer(model.template layer<8>(), act5, l5,
                                                       unit(b4.template layer<2>()), 0.0,
                                                       detail::integer_bound(l5, n));
        (void)detail::integer_bound(l6, n);
        double const unit5 = unit(act5);
        std::vector<double> scale(l6.w.out);
        for (std::size_t j = 0; j < scale.size(); ++j) scale[j] = unit5 * l6.step[j];
        std::vector<float> bias = std::move(l6.bias);
        bias.resize(l6.w.out, 0.0f);  // no bias: 0
        l5.w.scale.clear();           // folded into the thresholds and the logits' scale
        l6.w.scale.clear();
        std::vector<packed_kbit_dense> dense;
        dense.emplace_back(std::move(l5.w), std::move(t5));
        dense.emplace_back(std::move(l6.w), std::move(scale), std::move(bias));
        return packed_kbit_cnn(options.input, std::move(convs), std::vector<pool_window>(g.pools.begin(), g.pools.end()),
                               std::move(dense));
    }
    return {};
}

} // namespace lowbit::deploy
