// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::max_pool2d: the maximum over k x k windows with a stride, on [N, C, H, W]; the gradient goes
/// to the (first) arg-max of each window.

#include <lowbit/config.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>

#include <xtensor/xtensor.hpp>

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
        for (std::size_t p = 0; p < n * c; ++p) {
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
        return y;
    }

    xt::xtensor<float, 4> backward(xt::xtensor<float, 4> const& dy)
    {
        xt::xtensor<float, 4> dx = xt::zeros<float>(in_shape_);
        for (std::size_t o = 0; o < dy.size(); ++o) dx.data()[arg_[o]] += dy.data()[o];
        return dx;
    }

    template <class F> void for_each_weight(F&&) {}
    template <class F> void for_each_parameter(F&&) {}

private:
    std::size_t kernel, stride;
    std::array<std::size_t, 4> in_shape_{};
    std::vector<std::size_t> arg_;
};

} // namespace lowbit::nn
