// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::hardtanh: y = clamp(x, -1, 1); dy passes where |x| <= 1. This is the clipped
/// straight-through estimator of binarized activations (Hubara et al. 2016).

#include <lowbit/nn/detail/masked_gradient.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace lowbit::nn {

/// @brief Options of hardtanh.
struct hardtanh_options {
    float lo = -1.0f;
    float hi = 1.0f;
};

/// @brief Hard tanh with bounds [lo, hi] (default [-1, 1]).
class hardtanh {
public:
    using weight_policies = type_list<>;

    explicit hardtanh(hardtanh_options o = {}) : lo(o.lo), hi(o.hi) {}
    hardtanh_options options() const noexcept { return {.lo = lo, .hi = hi}; }

    template <std::size_t Rank>
    xt::xtensor<float, Rank> forward(xt::xtensor<float, Rank> const& x, forward_context const& ctx)
    {
        xt::xtensor<float, Rank> y = xt::xtensor<float, Rank>::from_shape(x.shape());
        if (ctx.training) mask_.resize(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) {
            float const v = x.data()[i];
            y.data()[i] = std::clamp(v, lo, hi);
            if (ctx.training) mask_[i] = v >= lo && v <= hi;
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
    float lo, hi;
    std::vector<unsigned char> mask_;
};

} // namespace lowbit::nn
