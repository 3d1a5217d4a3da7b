// SPDX-License-Identifier: MIT
#pragma once
// Test support: the argmax of a row of logits (the first of equal maxima).

#include <xtensor/xtensor.hpp>

#include <cstddef>

namespace lowbit::test {

inline std::size_t argmax_row(xt::xtensor<float, 2> const& l, std::size_t i)
{
    std::size_t best = 0;
    for (std::size_t j = 1; j < l.shape(1); ++j)
        if (l(i, j) > l(i, best)) best = j;
    return best;
}

} // namespace lowbit::test
