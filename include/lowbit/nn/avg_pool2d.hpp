// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::avg_pool2d (k x k windows with a stride) and nn::global_avg_pool2d ([N, C, H, W] -> [N, C]).

#include <lowbit/config.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/max_pool2d.hpp>
#include <lowbit/nn/parameter.hpp>

#include <xtensor/xtensor.hpp>

#include <array>
#include <cstddef>

namespace lowbit::nn {

/// @brief Average pooling (no padding; floor mode).
class avg_pool2d {
public:
    using weight_policies = type_list<>;

    explicit avg_pool2d(pool_options o = {}) : kernel(o.kernel), stride(o.stride) {}
    pool_options options() const noexcept { return {.kernel = kernel, .stride = stride}; }

    xt::xtensor<float, 4> forward(xt::xtensor<float, 4> const& x, forward_context const&)
    {
        std::size_t const n = x.shape(0), c = x.shape(1), h = x.shape(2), w = x.shape(3);
        if (h < kernel || w < kernel) throw invalid_input("lowbit::nn::avg_pool2d: input smaller than the window");
        std::size_t const ho = (h - kernel) / stride + 1, wo = (w - kernel) / stride + 1;
        in_shape_ = {n, c, h, w};
        xt::xtensor<float, 4> y = xt::zeros<float>({n, c, ho, wo});
        float const inv = 1.0f / static_cast<float>(kernel * kernel);
        for (std::size_t p = 0; p < n * c; ++p)
            for (std::size_t oy = 0; oy < ho; ++oy)
                for (std::size_t ox = 0; ox < wo; ++ox) {
                    float s = 0.0f;
                    for (std::size_t ky = 0; ky < kernel; ++ky)
                        for (std::size_t kx = 0; kx < kernel; ++kx)
                            s += x.data()[p * h * w + (oy * stride + ky) * w + ox * stride + kx];
                    y.data()[(p * ho + oy) * wo + ox] = s * inv;
                }
        return y;
    }

    xt::xtensor<float, 4> backward(xt::xtensor<float, 4> const& dy)
    {
        auto const [n, c, h, w] = in_shape_;
        std::size_t const ho = dy.shape(2), wo = dy.shape(3);
        xt::xtensor<float, 4> dx = xt::zeros<float>(in_shape_);
        float const inv = 1.0f / static_cast<float>(kernel * kernel);
        for (std::size_t p = 0; p < n * c; ++p)
            for (std::size_t oy = 0; oy < ho; ++oy)
                for (std::size_t ox = 0; ox < wo; ++ox) {
                    float const g = dy.data()[(p * ho + oy) * wo + ox] * inv;
                    for (std::size_t ky = 0; ky < kernel; ++ky)
                        for (std::size_t kx = 0; kx < kernel; ++kx)
                            dx.data()[p * h * w + (oy * stride + ky) * w + ox * stride + kx] += g;
                }
        return dx;
    }

    template <class F> void for_each_weight(F&&) {}
    template <class F> void for_each_parameter(F&&) {}

private:
    std::size_t kernel, stride;
    std::array<std::size_t, 4> in_shape_{};
};

/// @brief Global average pooling: the mean over H x W of each channel.
class global_avg_pool2d {
public:
    using weight_policies = type_list<>;

    xt::xtensor<float, 2> forward(xt::xtensor<float, 4> const& x, forward_context const&)
    {
        in_shape_ = {x.shape(0), x.shape(1), x.shape(2), x.shape(3)};
        std::size_t const hw = x.shape(2) * x.shape(3);
        xt::xtensor<float, 2> y = xt::xtensor<float, 2>::from_shape({x.shape(0), x.shape(1)});
        for (std::size_t p = 0; p < y.size(); ++p) {
            float s = 0.0f;
            for (std::size_t i = 0; i < hw; ++i) s += x.data()[p * hw + i];
            y.data()[p] = s / static_cast<float>(hw);
        }
        return y;
    }

    xt::xtensor<float, 4> backward(xt::xtensor<float, 2> const& dy)
    {
        std::size_t const hw = in_shape_[2] * in_shape_[3];
        xt::xtensor<float, 4> dx = xt::xtensor<float, 4>::from_shape(in_shape_);
        for (std::size_t p = 0; p < dy.size(); ++p)
            for (std::size_t i = 0; i < hw; ++i) dx.data()[p * hw + i] = dy.data()[p] / static_cast<float>(hw);
        return dx;
    }

    template <class F> void for_each_weight(F&&) {}
    template <class F> void for_each_parameter(F&&) {}

private:
    std::array<std::size_t, 4> in_shape_{};
};

} // namespace lowbit::nn
