// SPDX-License-Identifier: MIT
// deploy::compile of a model whose activation quantizer writes signed levels (here DoReFa's weight grid used on
// activations): no packed encoding, and the message says which quantizers have one. Its twin uses PACT codes.
#include <lowbit/deploy/compile.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/quantize_activation.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/quant/ste/ste.hpp>

namespace ste = lowbit::ste;

int main()
{
    using xnor = lowbit::nn::dense<ste::xnor_weight<>>;
#if LOWBIT_SHOULD_FAIL
    lowbit::nn::quantize_activation<ste::dorefa_weight<2>> act;
#else
    lowbit::nn::quantize_activation<ste::pact<2>> act;
#endif
    lowbit::nn::sequential model(xnor({.in = 4, .out = 8, .bias = false}), act, xnor({.in = 8, .out = 2, .bias = true}));
    return lowbit::deploy::compile(model).classes() == 2 ? 0 : 1;
}
