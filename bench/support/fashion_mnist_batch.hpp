// SPDX-License-Identifier: MIT
#pragma once
// The training benchmarks' input: one batch of the first 100 Fashion-MNIST test images (real data, so that
// quantizers and BatchNorm see realistic values), loaded once per process.
#include <lowbit/data/fashion_mnist.hpp>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <cstdint>

namespace lowbit_bench {

struct batch_data {
    xt::xtensor<float, 2> x;
    xt::xtensor<std::uint8_t, 1> y;
};

inline batch_data const& fashion_mnist_batch()
{
    static batch_data const d = [] {
        auto const t = lowbit::data::load_fashion_mnist(lowbit::data::split::test);
        return batch_data{xt::view(t.images, xt::range(0, 100), xt::all()), xt::view(t.labels, xt::range(0, 100))};
    }();
    return d;
}

} // namespace lowbit_bench
