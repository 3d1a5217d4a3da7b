// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::conv2d<WeightPolicy>: 2-D convolution (cross-correlation, as in every DL framework) on
/// [N, C, H, W] tensors, computed as im2col + one GEMM for the whole batch: the input patches of all samples
/// form a [C*kh*kw, N*Ho*Wo] matrix, and Y = W [O, C*kh*kw] x cols. One large GEMM instead of N small ones
/// keeps the GEMM threads busy (per-sample GEMMs of a 28x28 feature map are too small to split). The patches
/// are kept from the forward pass for dW = dY cols^T; dcols = W^T dY is scattered back with col2im.
/// Quantized training uses the straight-through estimator as nn::dense does.

#include <lowbit/config.hpp>
#include <lowbit/kernels/gemm.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>
#include <lowbit/nn/weight.hpp>

#include <xtensor/xtensor.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace lowbit::nn {

/// @brief Options of conv2d.
struct conv2d_options {
    std::size_t in = 0;        ///< input channels
    std::size_t out = 0;       ///< output channels
    std::size_t kernel = 3;    ///< square kernel size
    std::size_t stride = 1;
    std::size_t padding = 0;   ///< zero padding on every side
    bool bias = true;
    nn::init init = nn::init::he_normal;
    std::uint64_t seed = 0;
};

namespace detail {
struct conv_geometry {
    std::size_t c, h, w, k, stride, pad, ho, wo;
    std::size_t patch() const noexcept { return c * k * k; }
    std::size_t pixels() const noexcept { return ho * wo; }
};

/// cols[(ci*k + ky)*k + kx][oy*wo + ox] = x[ci][oy*s + ky - p][ox*s + kx - p] (0 outside); the rows of
/// cols are `ld` floats apart.
inline void im2col(float const* x, conv_geometry const& g, float* cols, std::size_t ld) noexcept
{
    for (std::size_t ci = 0; ci < g.c; ++ci)
        for (std::size_t ky = 0; ky < g.k; ++ky)
            for (std::size_t kx = 0; kx < g.k; ++kx) {
                float* row = cols + ((ci * g.k + ky) * g.k + kx) * ld;
                for (std::size_t oy = 0; oy < g.ho; ++oy) {
                    auto const iy = static_cast<std::ptrdiff_t>(oy * g.stride + ky) - static_cast<std::ptrdiff_t>(g.pad);
                    for (std::size_t ox = 0; ox < g.wo; ++ox) {
                        auto const ix = static_cast<std::ptrdiff_t>(ox * g.stride + kx) - static_cast<std::ptrdiff_t>(g.pad);
                        bool const inside = iy >= 0 && ix >= 0 && iy < static_cast<std::ptrdiff_t>(g.h) &&
                                            ix < static_cast<std::ptrdiff_t>(g.w);
                        row[oy * g.wo + ox] =
                            inside ? x[(ci * g.h + static_cast<std::size_t>(iy)) * g.w + static_cast<std::size_t>(ix)] : 0.0f;
                    }
                }
            }
}

/// The adjoint of im2col: adds every patch entry back to the input position it came from.
inline void col2im(float const* cols, conv_geometry const& g, float* dx, std::size_t ld) noexcept
{
    for (std::size_t ci = 0; ci < g.c; ++ci)
        for (std::size_t ky = 0; ky < g.k; ++ky)
            for (std::size_t kx = 0; kx < g.k; ++kx) {
                float const* row = cols + ((ci * g.k + ky) * g.k + kx) * ld;
                for (std::size_t oy = 0; oy < g.ho; ++oy) {
                    auto const iy = static_cast<std::ptrdiff_t>(oy * g.stride + ky) - static_cast<std::ptrdiff_t>(g.pad);
                    if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(g.h)) continue;
                    for (std::size_t ox = 0; ox < g.wo; ++ox) {
                        auto const ix = static_cast<std::ptrdiff_t>(ox * g.stride + kx) - static_cast<std::ptrdiff_t>(g.pad);
                        if (ix < 0 || ix >= static_cast<std::ptrdiff_t>(g.w)) continue;
                        dx[(ci * g.h + static_cast<std::size_t>(iy)) * g.w + static_cast<std::size_t>(ix)] += row[oy * g.wo + ox];
                    }
                }
            }
}
} // namespace detail

/// @brief A 2-D convolution layer whose weight [out, in, k, k] follows the policy W.
template <WeightPolicy W = float_weights_t>
class conv2d {
public:
    using weight_policies = type_list<W>;
    using tensor = xt::xtensor<float, 4>;

    explicit conv2d(conv2d_options o, W policy = {})
        : opts_(o), w_({o.out, o.in, o.kernel, o.kernel}, policy), b_(o.bias ? o.out : 0, 0.0f), db_(b_.size(), 0.0f)
    {
        if (o.in == 0 || o.out == 0 || o.kernel == 0 || o.stride == 0)
            throw invalid_input("lowbit::nn::conv2d: in, out, kernel and stride must be positive");
        detail::initialise(w_.master(), o.in * o.kernel * o.kernel, o.out * o.kernel * o.kernel, o.init, o.seed);
    }

    conv2d_options const& options() const noexcept { return opts_; }
    nn::weight<W>& weight() noexcept { return w_; }
    std::span<float> bias() noexcept { return b_; }

    tensor forward(tensor const& x, forward_context const& ctx)
    {
        if (x.shape(1) != opts_.in)
            throw invalid_input("lowbit::nn::conv2d: shape mismatch: expected " + std::to_string(opts_.in) +
                                " input channels, got " + std::to_string(x.shape(1)));
        if (x.shape(2) + 2 * opts_.padding < opts_.kernel || x.shape(3) + 2 * opts_.padding < opts_.kernel)
            throw invalid_input("lowbit::nn::conv2d: input " + std::to_string(x.shape(2)) + "x" +
                                std::to_string(x.shape(3)) + " is smaller than the kernel");
        g_ = geometry(x);
        n_ = x.shape(0);
        std::size_t const in_size = opts_.in * g_.h * g_.w, pixels = g_.pixels(), ld = n_ * pixels;
        cols_.resize(g_.patch() * ld);
        for (std::size_t s = 0; s < n_; ++s) detail::im2col(x.data() + s * in_size, g_, cols_.data() + s * pixels, ld);
        // ybig [O, N*P] = W [O, patch] x cols [patch, N*P], then reordered to [N, O, P].
        ybig_.resize(opts_.out * ld);
        auto const wv = w_.forward_values(ctx);
        kernels::sgemm(kernels::transpose::no, kernels::transpose::no, opts_.out, ld, g_.patch(), 1.0f, wv.data(),
                       g_.patch(), cols_.data(), ld, 0.0f, ybig_.data(), ld);
        tensor y = tensor::from_shape({n_, opts_.out, g_.ho, g_.wo});
        for (std::size_t s = 0; s < n_; ++s)
            for (std::size_t o = 0; o < opts_.out; ++o) {
                float const b = b_.empty() ? 0.0f : b_[o];
                float const* src = ybig_.data() + o * ld + s * pixels;
                float* dst = y.data() + (s * opts_.out + o) * pixels;
                for (std::size_t p = 0; p < pixels; ++p) dst[p] = src[p] + b;
            }
        if (!ctx.training) cols_.clear();  // the patches are kept only for a backward pass
        return y;
    }

    tensor backward(tensor const& dy)
    {
        std::size_t const in_size = opts_.in * g_.h * g_.w, pixels = g_.pixels(), ld = n_ * pixels;
        // dY reordered to [O, N*P], matching the columns of cols_.
        ybig_.resize(opts_.out * ld);
        for (std::size_t s = 0; s < n_; ++s)
            for (std::size_t o = 0; o < opts_.out; ++o) {
                float const* src = dy.data() + (s * opts_.out + o) * pixels;
                float* dst = ybig_.data() + o * ld + s * pixels;
                for (std::size_t p = 0; p < pixels; ++p) dst[p] = src[p];
                if (!db_.empty()) {
                    float acc = 0.0f;
                    for (std::size_t p = 0; p < pixels; ++p) acc += src[p];
                    db_[o] += acc;
                }
            }
        auto g = w_.grad();
        kernels::sgemm(kernels::transpose::no, kernels::transpose::yes, opts_.out, g_.patch(), ld, 1.0f, ybig_.data(),
                       ld, cols_.data(), ld, 1.0f, g.data(), g_.patch());
        auto const wv = w_.backward_values();
        dcols_.resize(g_.patch() * ld);
        kernels::sgemm(kernels::transpose::yes, kernels::transpose::no, g_.patch(), ld, opts_.out, 1.0f, wv.data(),
                       g_.patch(), ybig_.data(), ld, 0.0f, dcols_.data(), ld);
        tensor dx = xt::zeros<float>({n_, opts_.in, g_.h, g_.w});
        for (std::size_t s = 0; s < n_; ++s) detail::col2im(dcols_.data() + s * pixels, g_, dx.data() + s * in_size, ld);
        return dx;
    }

    template <class F>
    void for_each_weight(F&& f)
    {
        f(w_);
    }
    template <class F>
    void for_each_parameter(F&& f)
    {
        w_.for_each_parameter(f);
        if (!b_.empty()) {
            parameter p{"conv2d.bias", b_, db_, parameter_kind::bias};
            f(p);
        }
    }

private:
    detail::conv_geometry geometry(tensor const& x) const noexcept
    {
        std::size_t const h = x.shape(2), w = x.shape(3), k = opts_.kernel, s = opts_.stride, p = opts_.padding;
        return {opts_.in, h, w, k, s, p, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1};
    }

    conv2d_options opts_;
    nn::weight<W> w_;
    std::vector<float> b_, db_, cols_, dcols_, ybig_;
    detail::conv_geometry g_{};
    std::size_t n_ = 0;
};

} // namespace lowbit::nn
