// SPDX-License-Identifier: MIT
// A packed k-bit (PACT) MLP has no file format yet: save_packed on it is a compile-time error that says so,
// while compiling the same model is fine.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/packed_file.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/ste/ste.hpp>

namespace ste = lowbit::ste;

int main()
{
    auto model = lowbit::nn::mlp({.inputs = 4, .hidden = 8, .classes = 2}, ste::xnor_weight<>{}, ste::dorefa_weight<8>{},
                                 ste::dorefa_weight<8>{}, ste::pact<4>{}, lowbit::nn::bias_head);
    lowbit::deploy::packed_kbit_mlp const packed = lowbit::deploy::compile(model);
#if LOWBIT_SHOULD_FAIL
    lowbit::deploy::save_packed("model.lbpk", packed);
#endif
    return packed.classes() == 2 ? 0 : 1;
}
