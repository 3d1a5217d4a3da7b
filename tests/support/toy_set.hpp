// SPDX-License-Identifier: MIT
#pragma once
// Test support: a small labelled data set (inputs and class labels) that a test generates.

#include <xtensor/xtensor.hpp>

#include <cstdint>

namespace lowbit::test {

struct toy {
    xt::xtensor<float, 2> x;
    xt::xtensor<std::uint8_t, 1> y;
};

} // namespace lowbit::test
