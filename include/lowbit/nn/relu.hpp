// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::relu: y = max(x, 0), on tensors of any rank; dy passes where x > 0.

#include <lowbit/nn/detail/masked_gradient.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>

#include <xtensor/xtensor.hpp>

#include <cstddef>
#include <vector>

namespace lowbit::nn {

/// @brief Rectified linear unit.
class relu {
public:
    using weight_policies = type_list<>;

    template <std::size_t Rank>
    xt::xtensor<float, Rank> forward(xt::xtensor<float, Rank> const& x, forward_context const& ctx)
    {
        xt::xtensor<float, Rank> y = xt::xtensor<float, Rank>::from_shape(x.shape());
        if (ctx.training) mask_.resize(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) {
            bool const on = x.data()[i] > 0.0f;
            y.data()[i] = on ? x.data()[i] : 0.0f;
            if (ctx.training) mask_[i] = on;
        }
        return y;
    }

    template <std::size_t Rank>
    xt::xtensor<float, Rank> backward(xt::xtensor<float, Rank> const& dy)
    {
        return detail::masked_gradient(dy, mask_);
    }

    template <class F> void for_each_weight(F&&) {}
    template <class F> void for_each_parameter(F&&) {}

private:
    std::vector<unsigned char> mask_;
};

} // namespace lowbit::nn
