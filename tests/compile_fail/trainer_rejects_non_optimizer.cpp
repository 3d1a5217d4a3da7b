// SPDX-License-Identifier: MIT
// A trainer's optimizer must model lowbit::optim::Optimizer; the message says what to provide.
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/optim/adam.hpp>
#include <lowbit/train/full_precision.hpp>
#include <lowbit/train/trainer.hpp>

struct not_an_optimizer {
    void update(float) {}
};

int main()
{
    lowbit::nn::sequential model{lowbit::nn::dense<>({.in = 4, .out = 2})};
#if LOWBIT_SHOULD_FAIL
    lowbit::train::trainer t{model, lowbit::train::full_precision{}, not_an_optimizer{}};
#else
    lowbit::train::trainer t{model, lowbit::train::full_precision{}, lowbit::optim::adam{}};
#endif
    return t.steps_done() != 0;
}
