// SPDX-License-Identifier: MIT
// deploy::compile of nn::cnn with float (ReLU) activations: no packed form, and the message says which CNN has
// one. The must-compile twin is the binarized CNN (sign activations).
#include <lowbit/deploy/compile.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>

namespace ste = lowbit::ste;

int main()
{
#if LOWBIT_SHOULD_FAIL
    auto model = lowbit::nn::cnn({.size = 8, .width1 = 4, .width2 = 4, .hidden = 8, .classes = 2}, ste::xnor_weight<>{},
                                 ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, lowbit::nn::float_activations,
                                 lowbit::nn::bias_head);
#else
    auto model = lowbit::nn::cnn({.size = 8, .width1 = 4, .width2 = 4, .hidden = 8, .classes = 2}, ste::xnor_weight<>{},
                                 ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                                 lowbit::nn::bias_head);
#endif
    return lowbit::deploy::compile(model).classes() == 2 ? 0 : 1;
}
