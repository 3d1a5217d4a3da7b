// SPDX-License-Identifier: MIT
// stochastic_rounding with a deterministic weight quantizer is rejected; the message points to train::rounded.
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/optim/adam.hpp>
#include <lowbit/train/stochastic_rounding.hpp>
#include <lowbit/train/trainer.hpp>

#if LOWBIT_SHOULD_FAIL
using w1 = lowbit::quantizer<1, lowbit::nearest_even_t, lowbit::clip::fixed_range>;
#else
using w1 = lowbit::quantizer<1, lowbit::stochastic_t, lowbit::clip::fixed_range>;
#endif

int main()
{
    lowbit::nn::sequential model{lowbit::nn::dense<w1>({.in = 4, .out = 2})};
    lowbit::train::trainer t{model, lowbit::train::stochastic_rounding{}, lowbit::optim::adam{}};
    return t.steps_done() != 0;
}
