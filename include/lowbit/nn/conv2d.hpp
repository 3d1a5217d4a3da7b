// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::conv2d<WeightPolicy>: 2-D convolution (cross-correlation, as in every DL framework) on
/// [N, C, H, W] tensors. Quantized training uses the straight-through estimator as nn::dense does.
///
/// Two ways to compute it (nn::execution; `automatic`, the default, picks the first where
/// kernels::plane_conv_preferred), the same sums in different orders:
/// - `kernels` (stride 1, padding below the kernel size): each image is copied once into zero-padded
///   planes, kept for the backward pass, and convolved directly by kernels/plane_conv.hpp, one image per
///   task of lowbit's pool. The input gradient is the same kernel on the zero-padded dY with the kernel
///   flipped and its in/out channels swapped (a stride-1 transposed convolution is a convolution); the
///   weight gradient is a per-image dW_n = dY_n x_n^T, and dW = dW_0 + dW_1 + ... in image order, so
///   results are the same for every thread count. No patch matrix: the im2col path below writes and reads
///   k*k times the input per layer, which made it memory-bound.
/// - `reference` (and every other stride or padding): im2col + one GEMM for the whole batch: the input
///   patches of all samples form a [C*kh*kw, N*Ho*Wo] matrix, and Y = W [O, C*kh*kw] x cols. The patches are
///   kept from the forward pass for dW = dY cols^T; dcols = W^T dY is scattered back with col2im.

#include <lowbit/config.hpp>
#include <lowbit/kernels/gemm.hpp>
#include <lowbit/kernels/plane_conv.hpp>
#include <lowbit/nn/batch_shards.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/execution.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>
#include <lowbit/nn/weight.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <xsimd/xsimd.hpp>
#include <xtensor/xtensor.hpp>

#include <algorithm>
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
    nn::execution execution = nn::execution::automatic;
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
/// Tap offsets of a stride-1 convolution on c zero-padded h x w planes, in the weights' (ci, ky, kx) order.
inline void plane_offsets(std::vector<std::ptrdiff_t>& off, std::size_t c, std::size_t h, std::size_t w, std::size_t k)
{
    off.clear();
    for (std::size_t ci = 0; ci < c; ++ci)
        for (std::size_t ky = 0; ky < k; ++ky)
            for (std::size_t kx = 0; kx < k; ++kx) off.push_back(static_cast<std::ptrdiff_t>((ci * h + ky) * w + kx));
}

/// Copies n floats with inline vector moves. The direct path copies image rows of 14 to 30 floats, where
/// std::copy_n becomes one library memmove call per row.
inline void copy_row(float const* src, std::size_t n, float* dst) noexcept
{
    using batch = xsimd::batch<float>;
    std::size_t i = 0;
    for (; i + batch::size <= n; i += batch::size) batch::load_unaligned(src + i).store_unaligned(dst + i);
    for (; i < n; ++i) dst[i] = src[i];
}

/// Copies c planes of h x w into the interiors of dst's planes of (h + 2p) x (w + 2p); the border is not written.
inline void copy_planes(float const* src, std::size_t c, std::size_t h, std::size_t w, std::size_t p, float* dst) noexcept
{
    std::size_t const wp = w + 2 * p, hp = h + 2 * p;
    for (std::size_t ci = 0; ci < c; ++ci)
        for (std::size_t y = 0; y < h; ++y) copy_row(src + (ci * h + y) * w, w, dst + (ci * hp + y + p) * wp + p);
}

/// copy_planes into dst after zeroing all of dst's `size` floats: the border and the slack that
/// kernels::plane_conv may read past the last plane.
inline void pad_planes(float const* src, std::size_t c, std::size_t h, std::size_t w, std::size_t p, float* dst,
                       std::size_t size) noexcept
{
    std::fill_n(dst, size, 0.0f);
    copy_planes(src, c, h, w, p, dst);
}

/// Per-thread buffers of the direct path, reused across layers and steps (no allocation per step once grown);
/// 64-byte aligned, so that the weight gradient's dY rows (a multiple of 16 floats apart) load aligned.
struct conv_buffers {
    std::vector<float, xsimd::aligned_allocator<float, 64>> a, b, c;
};
inline conv_buffers& conv_scratch()
{
    thread_local conv_buffers buffers;
    return buffers;
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
        bool const kernels = opts_.execution == execution::kernels ||
                             (opts_.execution == execution::automatic && kernels::plane_conv_preferred<>);
        direct_ = kernels && opts_.stride == 1 && opts_.padding < opts_.kernel;
        tensor y = tensor::from_shape({n_, opts_.out, g_.ho, g_.wo});
        shards_ = ctx.training ? ctx.shards : nullptr;
        auto const wv = w_.forward_values(ctx);
        if (direct_)
            forward_planes(x, wv.data(), y);
        else
            forward_im2col(x, wv.data(), y, ctx);
        return y;
    }

    /// Accumulates dW and db; returns dX.
    tensor backward(tensor const& dy) { return backward_pass(dy, true); }

    /// Accumulates dW and db only (a first layer: see no_input_gradient_t).
    void backward(tensor const& dy, no_input_gradient_t) { (void)backward_pass(dy, false); }

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
    /// Both backward passes: dW and db; dX too when `input_gradient`, else an empty tensor.
    tensor backward_pass(tensor const& dy, bool input_gradient)
    {
        std::size_t const pixels = g_.pixels();
        // Sums over the batch go shard by shard in data-parallel training (nn/batch_shards.hpp).
        auto bias_sum = [&](std::size_t r0, std::size_t r1, std::span<float> db, std::size_t) {
            for (std::size_t s = r0; s < r1; ++s)
                for (std::size_t o = 0; o < db.size(); ++o) {
                    float const* src = dy.data() + (s * opts_.out + o) * pixels;
                    float acc = 0.0f;
                    for (std::size_t p = 0; p < pixels; ++p) acc += src[p];
                    db[o] += acc;
                }
        };
        accumulate_over_shards(shards_, n_, std::span<float>(db_), bias_sum);
        return direct_ ? backward_planes(dy, input_gradient) : backward_im2col(dy, input_gradient);
    }

    /// The direct path's sizes: the input on zero-padded planes (hp x wp) and dY on planes padded by k-1-p
    /// for the input gradient (hq x wq); outputs are computed on each padded grid's full rows.
    struct plane_sizes {
        std::size_t hp, wp, image, positions, taps;      // forward and weight gradient
        std::size_t hq, wq, image2, positions2, taps2;   // input gradient
    };
    plane_sizes planes() const noexcept
    {
        std::size_t const c = opts_.in, o = opts_.out, k = opts_.kernel, p = opts_.padding, q = k - 1 - p;
        std::size_t const hp = g_.h + 2 * p, wp = g_.w + 2 * p, hq = g_.ho + 2 * q, wq = g_.wo + 2 * q;
        return {hp, wp, c * hp * wp + k + kernels::plane_conv_overread, g_.ho * wp, c * k * k,
                hq, wq, o * hq * wq + k + kernels::plane_conv_overread, g_.h * wq, o * k * k};
    }

    void forward_planes(tensor const& x, float const* wv, tensor& y)
    {
        std::size_t const c = opts_.in, o = opts_.out, k = opts_.kernel, p = opts_.padding, pixels = g_.pixels();
        plane_sizes const z = planes();
        detail::plane_offsets(off_, c, z.hp, z.wp, k);
        xpad_.resize(n_ * z.image);  // kept for the weight gradient
        parallel_for(n_, 1, [&](std::size_t begin, std::size_t end) {
            auto& grid = detail::conv_scratch().a;
            grid.resize(o * z.positions);
            for (std::size_t s = begin; s < end; ++s) {
                float* const xs = xpad_.data() + s * z.image;
                detail::pad_planes(x.data() + s * c * g_.h * g_.w, c, g_.h, g_.w, p, xs, z.image);
                kernels::plane_conv(o, z.positions, z.taps, off_.data(), wv, z.taps, xs, grid.data(), z.positions);
                for (std::size_t oc = 0; oc < o; ++oc) {
                    float const b = b_.empty() ? 0.0f : b_[oc];
                    float* dst = y.data() + (s * o + oc) * pixels;
                    for (std::size_t oy = 0; oy < g_.ho; ++oy) {
                        float const* src = grid.data() + oc * z.positions + oy * z.wp;
                        for (std::size_t ox = 0; ox < g_.wo; ++ox) dst[oy * g_.wo + ox] = src[ox] + b;
                    }
                }
            }
        });
    }

    tensor backward_planes(tensor const& dy, bool input_gradient)
    {
        std::size_t const c = opts_.in, o = opts_.out, k = opts_.kernel, pixels = g_.pixels();
        plane_sizes const z = planes();
        if (input_gradient) {
            // The input gradient convolves dY padded by k-1-p with the kernel flipped, channels swapped.
            auto const wb = w_.backward_values();
            wflip_.resize(c * z.taps2);
            for (std::size_t oc = 0; oc < o; ++oc)
                for (std::size_t ci = 0; ci < c; ++ci)
                    for (std::size_t ky = 0; ky < k; ++ky)
                        for (std::size_t kx = 0; kx < k; ++kx)
                            wflip_[ci * z.taps2 + (oc * k + ky) * k + kx] =
                                wb[((oc * c + ci) * k + (k - 1 - ky)) * k + (k - 1 - kx)];
            detail::plane_offsets(off2_, o, z.hq, z.wq, k);
        }
        std::size_t const wsize = o * z.taps;
        dwpart_.resize(n_ * wsize);
        tensor dx = input_gradient ? tensor::from_shape({n_, c, g_.h, g_.w}) : tensor{};
        // dY rows on the input's padded grid start 64-byte aligned: 16 floats apart.
        std::size_t const lddy = (z.positions + 15) / 16 * 16;
        parallel_for(n_, 1, [&](std::size_t begin, std::size_t end) {
            auto& scratch = detail::conv_scratch();
            // Zeroed once per task: the images below write only the positions that are outputs (a) and the
            // planes' interiors (b), so the other columns, the borders and the slack stay 0.
            scratch.a.assign(o * lddy, 0.0f);
            if (input_gradient) {
                scratch.b.assign(z.image2, 0.0f);
                scratch.c.resize(c * z.positions2);
            }
            for (std::size_t s = begin; s < end; ++s) {
                float const* const dys = dy.data() + s * o * pixels;
                for (std::size_t oc = 0; oc < o; ++oc)
                    for (std::size_t oy = 0; oy < g_.ho; ++oy)
                        detail::copy_row(dys + (oc * g_.ho + oy) * g_.wo, g_.wo, scratch.a.data() + oc * lddy + oy * z.wp);
                kernels::plane_conv_weight_grad(o, z.positions, z.taps, off_.data(), scratch.a.data(), lddy,
                                                xpad_.data() + s * z.image, dwpart_.data() + s * wsize, z.taps);
                if (!input_gradient) continue;
                detail::copy_planes(dys, o, g_.ho, g_.wo, k - 1 - opts_.padding, scratch.b.data());
                kernels::plane_conv(c, z.positions2, z.taps2, off2_.data(), wflip_.data(), z.taps2, scratch.b.data(),
                                    scratch.c.data(), z.positions2);
                for (std::size_t ci = 0; ci < c; ++ci)
                    for (std::size_t iy = 0; iy < g_.h; ++iy)
                        detail::copy_row(scratch.c.data() + ci * z.positions2 + iy * z.wq, g_.w,
                                    dx.data() + ((s * c + ci) * g_.h + iy) * g_.w);
            }
        });
        // dW += dW_0 + dW_1 + ... in image order (per shard), whatever the thread count.
        auto image_sum = [&](std::size_t r0, std::size_t r1, std::span<float> g, std::size_t) {
            parallel_for(wsize, 1024, [&](std::size_t begin, std::size_t end) {
                for (std::size_t i = begin; i < end; ++i) {
                    float acc = g[i];
                    for (std::size_t s = r0; s < r1; ++s) acc += dwpart_[s * wsize + i];
                    g[i] = acc;
                }
            });
        };
        accumulate_over_shards(shards_, n_, w_.grad(), image_sum);
        return dx;
    }

    void forward_im2col(tensor const& x, float const* wv, tensor& y, forward_context const& ctx)
    {
        std::size_t const in_size = opts_.in * g_.h * g_.w, pixels = g_.pixels(), ld = n_ * pixels;
        cols_.resize(g_.patch() * ld);
        for (std::size_t s = 0; s < n_; ++s) detail::im2col(x.data() + s * in_size, g_, cols_.data() + s * pixels, ld);
        // ybig [O, N*P] = W [O, patch] x cols [patch, N*P], then reordered to [N, O, P].
        ybig_.resize(opts_.out * ld);
        // One product per shard of the batch (nn/batch_shards.hpp: the same calls on any number of processes).
        for_each_shard(ctx.shards, n_, [&](std::size_t r0, std::size_t r1) {
            kernels::sgemm(kernels::transpose::no, kernels::transpose::no, opts_.out, (r1 - r0) * pixels,
                           g_.patch(), 1.0f, wv, g_.patch(), cols_.data() + r0 * pixels, ld, 0.0f,
                           ybig_.data() + r0 * pixels, ld);
        });
        for (std::size_t s = 0; s < n_; ++s)
            for (std::size_t o = 0; o < opts_.out; ++o) {
                float const b = b_.empty() ? 0.0f : b_[o];
                float const* src = ybig_.data() + o * ld + s * pixels;
                float* dst = y.data() + (s * opts_.out + o) * pixels;
                for (std::size_t p = 0; p < pixels; ++p) dst[p] = src[p] + b;
            }
        if (!ctx.training) cols_.clear();  // the patches are kept only for a backward pass
    }

    tensor backward_im2col(tensor const& dy, bool input_gradient)
    {
        std::size_t const in_size = opts_.in * g_.h * g_.w, pixels = g_.pixels(), ld = n_ * pixels;
        // dY reordered to [O, N*P], matching the columns of cols_.
        ybig_.resize(opts_.out * ld);
        for (std::size_t s = 0; s < n_; ++s)
            for (std::size_t o = 0; o < opts_.out; ++o)
                std::copy_n(dy.data() + (s * opts_.out + o) * pixels, pixels, ybig_.data() + o * ld + s * pixels);
        auto patch_sum = [&](std::size_t r0, std::size_t r1, std::span<float> g, std::size_t) {
            if (r1 > r0)
                kernels::sgemm(kernels::transpose::no, kernels::transpose::yes, opts_.out, g_.patch(),
                               (r1 - r0) * pixels, 1.0f, ybig_.data() + r0 * pixels, ld, cols_.data() + r0 * pixels,
                               ld, 1.0f, g.data(), g_.patch());
        };
        accumulate_over_shards(shards_, n_, w_.grad(), patch_sum);
        if (!input_gradient) return {};
        auto const wv = w_.backward_values();
        dcols_.resize(g_.patch() * ld);
        for_each_shard(shards_, n_, [&](std::size_t r0, std::size_t r1) {
            kernels::sgemm(kernels::transpose::yes, kernels::transpose::no, g_.patch(), (r1 - r0) * pixels,
                           opts_.out, 1.0f, wv.data(), g_.patch(), ybig_.data() + r0 * pixels, ld, 0.0f,
                           dcols_.data() + r0 * pixels, ld);
        });
        tensor dx = xt::zeros<float>({n_, opts_.in, g_.h, g_.w});
        for (std::size_t s = 0; s < n_; ++s) detail::col2im(dcols_.data() + s * pixels, g_, dx.data() + s * in_size, ld);
        return dx;
    }

    detail::conv_geometry geometry(tensor const& x) const noexcept
    {
        std::size_t const h = x.shape(2), w = x.shape(3), k = opts_.kernel, s = opts_.stride, p = opts_.padding;
        return {opts_.in, h, w, k, s, p, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1};
    }

    conv2d_options opts_;
    nn::weight<W> w_;
    std::vector<float> b_, db_, cols_, dcols_, ybig_;
    // The direct path: padded input planes of the batch, per-image weight gradients, flipped weights, tap offsets.
    std::vector<float> xpad_, dwpart_, wflip_;
    std::vector<std::ptrdiff_t> off_, off2_;
    detail::conv_geometry g_{};
    std::size_t n_ = 0;
    bool direct_ = false;
    batch_shards const* shards_ = nullptr;  // of the last training forward pass
};

} // namespace lowbit::nn
