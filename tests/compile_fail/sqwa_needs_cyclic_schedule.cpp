// SPDX-License-Identifier: MIT
// SQWA captures a model at the end of each learning-rate cycle, so it needs a CyclicSchedule.
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/optim/adam.hpp>
#include <lowbit/optim/schedule/constant.hpp>
#include <lowbit/optim/schedule/cyclic.hpp>
#include <lowbit/train/sqwa.hpp>

int main()
{
    using w2 = lowbit::quantizer<2, lowbit::nearest_even_t, lowbit::clip::l2_optimal>;
    lowbit::nn::sequential model{lowbit::nn::dense<w2>({.in = 4, .out = 2})};
    xt::xtensor<float, 2> x = xt::zeros<float>({4, 4});
    xt::xtensor<std::uint8_t, 1> y = xt::zeros<std::uint8_t>({4});
#if LOWBIT_SHOULD_FAIL
    lowbit::optim::schedule::constant const schedule{};
#else
    lowbit::optim::schedule::cyclic const schedule{};
#endif
    lowbit::train::sqwa<> method{{.captures = 1, .finetune_epochs = 0}};
    return method.run(model, lowbit::optim::adam{}, schedule, x, y, {.batch = 2}).captured == 0;
}
