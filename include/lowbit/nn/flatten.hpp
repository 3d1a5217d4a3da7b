// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::flatten: [batch, C, H, W] -> [batch, C*H*W] (row-major, so no data moves but the copy).

#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <array>
#include <cstddef>

namespace lowbit::nn {

/// @brief Flattens all axes but the first.
class flatten {
public:
    using weight_policies = type_list<>;

    xt::xtensor<float, 2> forward(xt::xtensor<float, 4> const& x, forward_context const&)
    {
        shape_ = {x.shape(0), x.shape(1), x.shape(2), x.shape(3)};
        xt::xtensor<float, 2> y = xt::xtensor<float, 2>::from_shape({x.shape(0), x.size() / std::max<std::size_t>(x.shape(0), 1)});
        std::copy(x.data(), x.data() + x.size(), y.data());
        return y;
    }

    xt::xtensor<float, 4> backward(xt::xtensor<float, 2> const& dy)
    {
        xt::xtensor<float, 4> dx = xt::xtensor<float, 4>::from_shape(shape_);
        std::copy(dy.data(), dy.data() + dy.size(), dx.data());
        return dx;
    }

    template <class F> void for_each_weight(F&&) {}
    template <class F> void for_each_parameter(F&&) {}

private:
    std::array<std::size_t, 4> shape_{};
};

} // namespace lowbit::nn
