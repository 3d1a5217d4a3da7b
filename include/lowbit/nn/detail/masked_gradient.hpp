// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The backward pass shared by gated element-wise layers (relu, hardtanh): dx = dy where the gate was
/// open in the forward pass, 0 elsewhere; and the grain those layers split their element-wise loops by.
// IWYU pragma: private

#include <lowbit/parallel/parallel_for.hpp>

#include <xtensor/xtensor.hpp>

#include <cstddef>
#include <vector>

namespace lowbit::nn::detail {

/// Elements per parallel_for range of an element-wise layer: below 64 K elements (a dense layer's batch) the
/// pool is not woken.
inline constexpr std::size_t elementwise_grain = std::size_t{1} << 16;

template <std::size_t Rank>
xt::xtensor<float, Rank> masked_gradient(xt::xtensor<float, Rank> const& dy, std::vector<unsigned char> const& open)
{
    xt::xtensor<float, Rank> dx = xt::xtensor<float, Rank>::from_shape(dy.shape());
    float const* const in = dy.data();
    float* const out = dx.data();
    unsigned char const* const gate = open.data();
    parallel_for(dy.size(), elementwise_grain, [in, out, gate](std::size_t b, std::size_t e) {
        // Local restrict copies: the closure's members could alias the stores, which stops vectorisation.
        float const* __restrict src = in;
        unsigned char const* __restrict open_at = gate;
        float* __restrict dst = out;
        for (std::size_t i = b; i < e; ++i) {
            float const v = src[i];
            dst[i] = open_at[i] != 0 ? v : 0.0f;
        }
    });
    return dx;
}

} // namespace lowbit::nn::detail
