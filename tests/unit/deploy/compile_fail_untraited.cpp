// SPDX-License-Identifier: MIT
// deploy::compile reads weight policies through policy_traits: a fake quantizer that states no traits (and has
// no run-time info(), as ste::any_quantizer does) cannot be packed, and the message says which grids can.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>

#include <span>

namespace ste = lowbit::ste;

/// Binary weights, as XNOR-Net's, without a word about them to policy_traits.
struct silent_binary : ste::xnor_weight<> {
#if LOWBIT_SHOULD_FAIL
    using grid_type = void;  // hides xnor_weight's traits
#endif
};

int main()
{
    auto model = lowbit::nn::mlp({.inputs = 4, .hidden = 8, .classes = 2}, silent_binary{}, ste::dorefa_weight<8>{},
                                 ste::dorefa_weight<8>{}, ste::sign_activation{}, lowbit::nn::bias_head);
    return lowbit::deploy::compile(model).classes() == 2 ? 0 : 1;
}
