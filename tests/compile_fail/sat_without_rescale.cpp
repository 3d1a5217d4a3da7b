// SPDX-License-Identifier: MIT
// train::sat without ste::sat_rescale on any layer is plain DoReFa/PACT training: rejected with advice.
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/optim/sgd.hpp>
#include <lowbit/quant/ste/dorefa_weight.hpp>
#include <lowbit/quant/ste/sat_rescale.hpp>
#include <lowbit/train/sat.hpp>
#include <lowbit/train/trainer.hpp>

using w4 = lowbit::ste::dorefa_weight<4>;
#if LOWBIT_SHOULD_FAIL
using last_policy = w4;
#else
using last_policy = lowbit::ste::sat_rescale<w4>;
#endif

int main()
{
    lowbit::nn::sequential model{lowbit::nn::dense<w4>({.in = 4, .out = 4}), lowbit::nn::dense<last_policy>({.in = 4, .out = 2})};
    lowbit::train::trainer t{model, lowbit::train::sat{}, lowbit::optim::sgd{}};
    return t.steps_done() != 0;
}
