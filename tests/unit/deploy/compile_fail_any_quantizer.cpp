// SPDX-License-Identifier: MIT
// deploy::compile needs the weight quantizers in the model's type; ste::any_quantizer chooses at run time.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>

namespace ste = lowbit::ste;

#if LOWBIT_SHOULD_FAIL
using hidden = ste::any_quantizer;
#else
using hidden = ste::xnor_weight<>;
#endif

int main()
{
    auto model = lowbit::nn::mlp({.inputs = 4, .hidden = 8, .classes = 2}, hidden{ste::xnor_weight<>{}},
                                 ste::dorefa_weight<8>{}, ste::dorefa_weight<8>{}, ste::sign_activation{},
                                 lowbit::nn::bias_head);
    return lowbit::deploy::compile(model).classes() == 2 ? 0 : 1;
}
