// SPDX-License-Identifier: MIT
// lowbit-train: the MLP (784-1024-1024-10 with BatchNorm).
#include "run.hpp"

namespace lowbit_train {

int run_mlp(config const& c)
{
    auto make = [&](auto const& p) {
        return lowbit::nn::mlp(
            {.inputs = 784, .hidden = c.hidden, .classes = 10, .init = lowbit::nn::init::uniform_unit, .seed = c.seed},
            p.w, p.first, p.last, p.act, p.head);
    };
    if (c.summary)
        return dispatch(c, [&](auto p, auto, char const*) {
            auto model = make(p);
            return print_summary(c, model, {784});
        });
    auto const d = load(c);
    return dispatch(c, [&](auto p, auto method, char const* rounding) {
        auto model = make(p);
        return train_and_report(c, model, method, d.train.images, d.train.labels, d.test.images, d.test.labels, rounding);
    });
}

} // namespace lowbit_train
