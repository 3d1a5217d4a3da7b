// SPDX-License-Identifier: MIT
// deploy::compile of a binarized MLP whose hidden layer keeps float weights: no packed form, and the message says
// which grids have one (read through policy_traits). Its twin: the same MLP with ternary weights (a mid-tread
// grid, integer levels) and lowbit::quantizer's binary weights, which deploy through the same traits.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/ste/ste.hpp>

namespace ste = lowbit::ste;

int main()
{
#if LOWBIT_SHOULD_FAIL
    using hidden = lowbit::nn::float_weights_t;
    using first = ste::dorefa_weight<8>;
#else
    using hidden = ste::twn_weight<>;
    using first = lowbit::quantizer<1, lowbit::nearest_even_t, lowbit::clip::fixed_range>;
#endif
    auto model = lowbit::nn::mlp({.inputs = 4, .hidden = 8, .classes = 2}, hidden{}, first{}, ste::dorefa_weight<8>{},
                                 ste::sign_activation{}, lowbit::nn::bias_head);
    return lowbit::deploy::compile(model).classes() == 2 ? 0 : 1;
}
