// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The backward pass shared by gated element-wise layers (relu, hardtanh): dx = dy where the gate was
/// open in the forward pass, 0 elsewhere.
// IWYU pragma: private

#include <xtensor/xtensor.hpp>

#include <cstddef>
#include <vector>

namespace lowbit::nn::detail {

template <std::size_t Rank>
xt::xtensor<float, Rank> masked_gradient(xt::xtensor<float, Rank> const& dy, std::vector<unsigned char> const& open)
{
    xt::xtensor<float, Rank> dx = xt::xtensor<float, Rank>::from_shape(dy.shape());
    for (std::size_t i = 0; i < dy.size(); ++i) dx.data()[i] = open[i] ? dy.data()[i] : 0.0f;
    return dx;
}

} // namespace lowbit::nn::detail
