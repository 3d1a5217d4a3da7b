// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::compile: a trained model -> its packed inference model (deploy::packed_model), which runs on
/// the integer kernels.
///
/// Any nn::sequential whose layers lower compiles (deploy/lower.hpp lists lowbit's layers; a user's layer provides
/// its own `lower`): nn::mlp and nn::cnn with sign, k-bit code or float activations, other depths, residual
/// blocks, other pooling orders. Each weight policy is read through policy_traits (binary, or levels that fit
/// int8 codes: ste::xnor_weight, ste::dorefa_weight<Bits>, ste::twn_weight, lowbit::quantizer<1 or 2, ...>
/// trained with any method that evaluates with Q(w), a user's policy that states its traits; ste::any_quantizer
/// is checked when compile() meets it). A layer without a packed form is a compile-time error naming it.
///
/// What it does, layer by layer (docs/deploy.md has the derivation): a weight layer on the model's float input
/// maps it to 8-bit codes (compile_options' input map) and runs on the int8 kernel; a weight layer on sign bits
/// or codes runs on the XNOR-popcount or k-bit kernel with exact integer sums v; the monotone layers after it
/// (BatchNorm, ReLU, a user's) and the quantizer that closes it fold into integer thresholds on v, found with
/// copies of those very layers, so that each packed code is the code the fake-quant model gives to y(v); any
/// other layer after it gets the float outputs y(v) and runs as a float step.
///
/// @code
/// namespace ste = lowbit::ste;
/// auto model = lowbit::nn::mlp({.hidden = 1024}, ste::xnor_weight<>{}, ste::dorefa_weight<8>{},
///                              ste::dorefa_weight<8>{}, ste::sign_activation{}, lowbit::nn::bias_head);
/// // ... train it with lowbit::train::binary_connect ...
/// lowbit::deploy::packed_model const packed = lowbit::deploy::compile(model);   // images in [0, 1]
/// @endcode

#include <lowbit/deploy/compile_options.hpp>
#include <lowbit/deploy/lower.hpp>
#include <lowbit/deploy/lowering.hpp>
#include <lowbit/deploy/packed_model.hpp>

namespace lowbit::deploy {

/// @brief The packed inference model of @p model; see the file comment.
/// @throws invalid_input when the input map is invalid, a layer's weights are not on their policy's grid, the
/// widths do not chain, a layer is too wide for int32 sums, or a quantizer chosen at run time writes no codes.
template <LowerableLayer Model>
packed_model compile(Model& model, compile_options const& options = {})
{
    lowering c(options);
    lower(model, c);
    return c.finish();
}

} // namespace lowbit::deploy
