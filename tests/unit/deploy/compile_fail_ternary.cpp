// SPDX-License-Identifier: MIT
// deploy::compile of a binarized MLP whose hidden layer is ternary (a mid-tread grid, read through policy_traits):
// no packed form yet, and the message says which grids have one. Its twin: the same MLP with lowbit::quantizer's
// binary weights, which deploys through the same traits.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/ste/ste.hpp>

namespace ste = lowbit::ste;

int main()
{
#if LOWBIT_SHOULD_FAIL
    using hidden = ste::twn_weight<>;
#else
    using hidden = lowbit::quantizer<1, lowbit::nearest_even_t, lowbit::clip::fixed_range>;
#endif
    auto model = lowbit::nn::mlp({.inputs = 4, .hidden = 8, .classes = 2}, hidden{}, ste::dorefa_weight<8>{},
                                 ste::dorefa_weight<8>{}, ste::sign_activation{}, lowbit::nn::bias_head);
    return lowbit::deploy::compile(model).classes() == 2 ? 0 : 1;
}
