// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::max_pool2d: the maximum over k x k windows with a stride, on [N, C, H, W]; the gradient goes
/// to the (first) arg-max of each window.

#include <lowbit/config.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <limits>
#include <vector>

namespace lowbit::nn {

/// @brief Options of the pooling layers.
struct pool_options {
    std::size_t kernel = 2;
    std::size_t stride = 2;
};

/// @brief Max pooling (no padding; windows that do not fit are dropped, as PyTorch's floor mode).
class max_pool2d {
public:
    using weight_policies = type_list<>;

    explicit max_pool2d(pool_options o = {}) : kernel(o.kernel), stride(o.stride) {}

    /// The window and stride it was built with.
    pool_options options() const noexcept { return {.kernel = kernel, .stride = stride}; }

    xt::xtensor<float, 4> forward(xt::xtensor<float, 4> const& x, forward_context const&)
    {
        std::size_t const n = x.shape(0), c = x.shape(1), h = x.shape(2), w = x.shape(3);
        if (h < kernel || w < kernel) throw invalid_input("lowbit::nn::max_pool2d: input smaller than the window");
        std::size_t const ho = (h - kernel) / stride + 1, wo = (w - kernel) / stride + 1;
        in_shape_ = {n, c, h, w};
        xt::xtensor<float, 4> y = xt::xtensor<float, 4>::from_shape({n, c, ho, wo});
        arg_.resize(y.size());
        // Planes are independent: a range of them per thread.
        parallel_for(n * c, plane_grain(h * w), [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p) {
                float const* xp = x.data() + p * h * w;
                for (std::size_t oy = 0; oy < ho; ++oy)
                    for (std::size_t ox = 0; ox < wo; ++ox) {
                        float best = -std::numeric_limits<float>::infinity();
                        std::size_t at = (oy * stride) * w + ox * stride;
                        for (std::size_t ky = 0; ky < kernel; ++ky)
                            for (std::size_t kx = 0; kx < kernel; ++kx) {
                                std::size_t const i = (oy * stride + ky) * w + ox * stride + kx;
                                if (xp[i] > best) { best = xp[i]; at = i; }
                            }
                        std::size_t const o = (p * ho + oy) * wo + ox;
                        y.data()[o] = best;
                        arg_[o] = p * h * w + at;
                    }
            }
        });
        return y;
    }

    xt::xtensor<float, 4> backward(xt::xtensor<float, 4> const& dy)
    {
        xt::xtensor<float, 4> dx = xt::xtensor<float, 4>::from_shape(in_shape_);
        std::size_t const plane = in_shape_[2] * in_shape_[3], out_plane = dy.shape(2) * dy.shape(3);
        // Every window of plane p lies in plane p, so the planes split between threads as in forward.
        parallel_for(in_shape_[0] * in_shape_[1], plane_grain(plane), [&](std::size_t p0, std::size_t p1) {
            std::fill(dx.data() + p0 * plane, dx.data() + p1 * plane, 0.0f);
            for (std::size_t o = p0 * out_plane; o < p1 * out_plane; ++o) dx.data()[arg_[o]] += dy.data()[o];
        });
        return dx;
    }

    template <class F> void for_each_weight(F&&) {}
    template <class F> void for_each_parameter(F&&) {}

private:
    /// Planes per parallel_for range: about 32 K input elements.
    static std::size_t plane_grain(std::size_t plane) noexcept { return (std::size_t{32768} + plane - 1) / plane; }

    std::size_t kernel, stride;
    std::array<std::size_t, 4> in_shape_{};
    std::vector<std::size_t> arg_;
};

} // namespace lowbit::nn
