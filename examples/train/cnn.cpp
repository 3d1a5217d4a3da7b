// SPDX-License-Identifier: MIT
// lowbit-train: the small VGG-style CNN on 1x28x28 images.
#include "run.hpp"

namespace lowbit_train {

namespace {
lowbit::nn::cnn_options cnn_options(config const& c)
{
    using lowbit::nn::execution;
    return {.seed = c.seed,
            .execution = c.kernels == "lowbit"      ? execution::kernels
                         : c.kernels == "reference" ? execution::reference
                                                    : execution::automatic};
}
} // namespace

int run_cnn(config const& c)
{
    if (c.summary)
        return dispatch(c, [&](auto p, auto, char const*) {
            auto model = lowbit::nn::cnn(cnn_options(c), p.w, p.first, p.last, p.act, p.head);
            return print_summary(c, model, {1, 28, 28});
        });
    auto const d = load(c);
    auto const train_x = lowbit::nn::as_images(d.train.images, 1, 28, 28);
    auto const test_x = lowbit::nn::as_images(d.test.images, 1, 28, 28);
    return dispatch(c, [&](auto p, auto method, char const* rounding) {
        auto model = lowbit::nn::cnn(cnn_options(c), p.w, p.first, p.last, p.act, p.head);
        return train_and_report(c, model, method, train_x, d.train.labels, test_x, d.test.labels, rounding);
    });
}

} // namespace lowbit_train
