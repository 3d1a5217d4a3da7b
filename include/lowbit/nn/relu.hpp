// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::relu: y = max(x, 0), on tensors of any rank; dy passes where x > 0.

#include <lowbit/nn/detail/masked_gradient.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>
#include <lowbit/parallel/parallel_for.hpp>

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
        float const* const in = x.data();
        float* const out = y.data();
        unsigned char* const mask = ctx.training ? mask_.data() : nullptr;
        parallel_for(x.size(), detail::elementwise_grain, [in, out, mask](std::size_t b, std::size_t e) {
            // Local restrict pointers, so that the compiler sees no aliasing through the mask's bytes or the
            // closure, and vectorises.
            float const* __restrict src = in;
            float* __restrict dst = out;
            for (std::size_t i = b; i < e; ++i) {
                float const v = src[i];
                dst[i] = v > 0.0f ? v : 0.0f;
            }
            if (mask != nullptr) {
                unsigned char* __restrict on = mask;
                for (std::size_t i = b; i < e; ++i) on[i] = src[i] > 0.0f ? 1 : 0;
            }
        });
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
