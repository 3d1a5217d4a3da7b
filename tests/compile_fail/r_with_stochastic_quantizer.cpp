// SPDX-License-Identifier: MIT
// rounded (R) with a stochastic weight quantizer is rejected; the message points to stochastic_rounding.
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/optim/sgd.hpp>
#include <lowbit/train/rounded.hpp>
#include <lowbit/train/trainer.hpp>

#if LOWBIT_SHOULD_FAIL
using w2 = lowbit::quantizer<2, lowbit::stochastic_t, lowbit::clip::fixed_range>;
#else
using w2 = lowbit::quantizer<2, lowbit::nearest_even_t, lowbit::clip::fixed_range>;
#endif

int main()
{
    lowbit::nn::sequential model{lowbit::nn::dense<w2>({.in = 4, .out = 2})};
    lowbit::train::trainer t{model, lowbit::train::rounded{}, lowbit::optim::sgd{}};
    return t.steps_done() != 0;
}
