// SPDX-License-Identifier: MIT
// deploy::compile of a CNN with average pooling, which has no lowering yet (its mean of +-1 is no sign bit): the
// message names the missing customization point, the instantiation the layer. Its twin pools by the maximum.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/nn/avg_pool2d.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/conv2d.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/flatten.hpp>
#include <lowbit/nn/max_pool2d.hpp>
#include <lowbit/nn/quantize_activation.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/quant/ste/ste.hpp>

namespace ste = lowbit::ste;
namespace nn = lowbit::nn;

int main()
{
#if LOWBIT_SHOULD_FAIL
    nn::avg_pool2d pool{};
#else
    nn::max_pool2d pool{};
#endif
    nn::sequential model(nn::conv2d<ste::xnor_weight<>>({.in = 1, .out = 4, .kernel = 3, .padding = 1, .bias = false}),
                         nn::batch_norm<4>({.channels = 4}), nn::quantize_activation<ste::sign_activation>{}, pool,
                         nn::flatten{}, nn::dense<ste::xnor_weight<>>({.in = 4 * 4 * 4, .out = 2, .bias = true}));
    return lowbit::deploy::compile(model, {.height = 8, .width = 8}).classes() == 2 ? 0 : 1;
}
