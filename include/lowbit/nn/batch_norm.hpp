// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::batch_norm<Rank>: batch normalisation (Ioffe & Szegedy 2015) over [batch, C] (Rank 2, "1d")
/// or [batch, C, H, W] (Rank 4, "2d") tensors, with PyTorch's conventions: biased batch variance for the
/// normalisation, unbiased variance in the running estimate, momentum 0.1, eps 1e-5.
///
/// Training: y = gamma (x - mu_B) / sqrt(var_B + eps) + beta; running statistics are updated.
/// Evaluation: the running statistics replace the batch's.
/// Backward: dx = gamma / sqrt(var_B + eps) * (dy - mean(dy) - xhat * mean(dy xhat)), per channel.

#include <lowbit/config.hpp>
#include <lowbit/nn/batch_shards.hpp>
#include <lowbit/nn/buffer.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

namespace lowbit::nn {

/// @brief Options of batch_norm.
struct batch_norm_options {
    std::size_t channels = 0;
    float momentum = 0.1f;
    float eps = 1e-5f;
    bool affine = true;  ///< learn gamma and beta
};

/// @brief Batch normalisation over the channel axis 1 of a Rank-2 or Rank-4 tensor.
template <std::size_t Rank = 2>
    requires(Rank == 2 || Rank == 4)
class batch_norm {
public:
    using weight_policies = type_list<>;
    using tensor = xt::xtensor<float, Rank>;

    explicit batch_norm(batch_norm_options o)
        : opts_(o), gamma_(o.channels, 1.0f), beta_(o.channels, 0.0f), dgamma_(o.channels, 0.0f),
          dbeta_(o.channels, 0.0f), running_mean_(o.channels, 0.0f), running_var_(o.channels, 1.0f)
    {
        if (o.channels == 0) throw invalid_input("lowbit::nn::batch_norm: channels must be positive");
    }

    std::span<float> gamma() noexcept { return gamma_; }
    std::span<float> beta() noexcept { return beta_; }
    std::span<float> running_mean() noexcept { return running_mean_; }
    std::span<float> running_var() noexcept { return running_var_; }

    /// @brief Starts a re-estimation of the running statistics (after weight averaging, as SWA does): the
    /// statistics are reset and the following training-mode forward passes average the batch statistics
    /// with equal weights (momentum 1/k for the k-th batch) until end_recalibration().
    void begin_recalibration() noexcept
    {
        std::fill(running_mean_.begin(), running_mean_.end(), 0.0f);
        std::fill(running_var_.begin(), running_var_.end(), 0.0f);
        recalibrated_batches_ = 1;
    }
    /// @brief Returns to the exponential running average with the configured momentum.
    void end_recalibration() noexcept { recalibrated_batches_ = 0; }
    batch_norm_options const& options() const noexcept { return opts_; }

    tensor forward(tensor const& x, forward_context const& ctx)
    {
        std::size_t const c = opts_.channels;
        if (x.shape(1) != c)
            throw invalid_input("lowbit::nn::batch_norm: shape mismatch: expected " + std::to_string(c) +
                                " channels, got " + std::to_string(x.shape(1)));
        std::size_t const n = x.shape(0), inner = x.size() / (n * c);
        mean_.assign(c, 0.0f);
        inv_std_.assign(c, 0.0f);
        std::size_t const grain = channel_grain(n * inner);
        std::size_t const count = global_batch_rows(ctx.shards, n) * inner;
        if (ctx.training) {
            // Two passes in memory order, each channel summed by one thread over the batch in order (so the
            // result is the same for every thread count), with double accumulators: the mean first, then the
            // centred sum of squares. In data-parallel training the statistics are the global batch's
            // (synchronized BatchNorm): one partial per shard, added in the shard tree across processes.
            auto const bounds = shard_bounds(ctx.shards, n);
            std::size_t const shards = bounds.size() - 1;
            std::vector<double> s(shards * c, 0.0), s2(shards * c, 0.0);
            parallel_for(c, grain, [&](std::size_t c0, std::size_t c1) {
                for (std::size_t l = 0; l < shards; ++l)
                    for_each_run(bounds[l], bounds[l + 1], inner, c0, c1,
                                 [&](std::size_t ch, float const* p, std::size_t len, std::size_t) {
                                     s[l * c + ch] +=
                                         lane_sum(len, [p](std::size_t i) { return static_cast<double>(p[i]); });
                                 }, x.data());
            });
            sum_over_batch(ctx.shards, std::span<double>(s), c);
            for (std::size_t ch = 0; ch < c; ++ch) s[ch] /= static_cast<double>(count);
            parallel_for(c, grain, [&](std::size_t c0, std::size_t c1) {
                for (std::size_t l = 0; l < shards; ++l)
                    for_each_run(bounds[l], bounds[l + 1], inner, c0, c1,
                                 [&](std::size_t ch, float const* p, std::size_t len, std::size_t) {
                                     double const mu = s[ch];
                                     s2[l * c + ch] +=
                                         lane_sum(len, [p, mu](std::size_t i) { return (p[i] - mu) * (p[i] - mu); });
                                 }, x.data());
            });
            sum_over_batch(ctx.shards, std::span<double>(s2), c);
            shards_ = ctx.shards;
            float const momentum =
                recalibrated_batches_ > 0 ? 1.0f / static_cast<float>(recalibrated_batches_++) : opts_.momentum;
            for (std::size_t ch = 0; ch < c; ++ch) {
                auto const mu = static_cast<float>(s[ch]);
                auto const var = static_cast<float>(s2[ch] / static_cast<double>(count));
                float const unbiased = count > 1 ? static_cast<float>(s2[ch] / static_cast<double>(count - 1)) : var;
                running_mean_[ch] = (1.0f - momentum) * running_mean_[ch] + momentum * mu;
                running_var_[ch] = (1.0f - momentum) * running_var_[ch] + momentum * unbiased;
                mean_[ch] = mu;
                inv_std_[ch] = 1.0f / std::sqrt(var + opts_.eps);
            }
            // The backward pass reads x only as x_hat = (x - mean) * inv_std, so that is what is kept.
            x_hat_.resize(x.size());
        } else {
            for (std::size_t ch = 0; ch < c; ++ch) {
                mean_[ch] = running_mean_[ch];
                inv_std_[ch] = 1.0f / std::sqrt(running_var_[ch] + opts_.eps);
            }
        }
        tensor y = tensor::from_shape(x.shape());
        parallel_for(c, grain, [&](std::size_t c0, std::size_t c1) {
            for_each_run(0, n, inner, c0, c1, [&](std::size_t ch, float const* p, std::size_t len, std::size_t off) {
                float const mu = mean_[ch], is = inv_std_[ch], k = is * gamma_[ch], bt = beta_[ch];
                float* q = y.data() + off;
                for (std::size_t i = 0; i < len; ++i) q[i] = (p[i] - mu) * k + bt;
                if (ctx.training) {
                    float* h = x_hat_.data() + off;
                    for (std::size_t i = 0; i < len; ++i) h[i] = (p[i] - mu) * is;
                }
            }, x.data());
        });
        return y;
    }

    tensor backward(tensor const& dy)
    {
        std::size_t const c = opts_.channels, n = dy.shape(0), inner = dy.size() / (n * c);
        auto const count = static_cast<float>(global_batch_rows(shards_, n) * inner);
        // Per shard: sum dy (first c values) and sum dy x_hat (next c); see the forward pass.
        auto const bounds = shard_bounds(shards_, n);
        std::size_t const shards = bounds.size() - 1;
        std::vector<double> sums(shards * 2 * c, 0.0);
        tensor dx = tensor::from_shape(dy.shape());
        std::size_t const grain = channel_grain(n * inner);
        parallel_for(c, grain, [&](std::size_t c0, std::size_t c1) {
            for (std::size_t l = 0; l < shards; ++l) {
                double* const sdy = sums.data() + l * 2 * c;
                double* const sdyx = sdy + c;
                for_each_run(bounds[l], bounds[l + 1], inner, c0, c1,
                             [&](std::size_t ch, float const* h, std::size_t len, std::size_t off) {
                                 float const* g = dy.data() + off;
                                 sdy[ch] += lane_sum(len, [g](std::size_t i) { return static_cast<double>(g[i]); });
                                 sdyx[ch] += lane_sum(
                                     len, [g, h](std::size_t i) { return static_cast<double>(g[i] * h[i]); });
                             }, x_hat_.data());
            }
        });
        // dgamma, dbeta: this process's part (the trainer sums parameters' gradients across processes).
        auto add_sums = [&](std::size_t at) {  // d += shard l's sums at offset `at` (0: dy, c: dy x_hat)
            return [&, at](std::size_t, std::size_t, std::span<float> d, std::size_t l) {
                double const* const src = sums.data() + l * 2 * c + at;
                for (std::size_t ch = 0; ch < c; ++ch) d[ch] += static_cast<float>(src[ch]);
            };
        };
        accumulate_over_shards(shards_, n, std::span<float>(dgamma_), add_sums(c));
        accumulate_over_shards(shards_, n, std::span<float>(dbeta_), add_sums(0));
        // dx needs the global batch's sums (synchronized BatchNorm).
        sum_over_batch(shards_, std::span<double>(sums), 2 * c);
        double const* const sdy = sums.data();
        double const* const sdyx = sdy + c;
        parallel_for(c, grain, [&](std::size_t c0, std::size_t c1) {
            for_each_run(0, n, inner, c0, c1, [&](std::size_t ch, float const* h, std::size_t len, std::size_t off) {
                float const* g = dy.data() + off;
                float* q = dx.data() + off;
                float const k = gamma_[ch] * inv_std_[ch];
                float const mdy = static_cast<float>(sdy[ch]) / count, mdyx = static_cast<float>(sdyx[ch]) / count;
                for (std::size_t i = 0; i < len; ++i) q[i] = k * (g[i] - mdy - h[i] * mdyx);
            }, x_hat_.data());
        });
        return dx;
    }

    template <class F>
    void for_each_weight(F&&)
    {
    }
    template <class F>
    void for_each_parameter(F&& f)
    {
        if (!opts_.affine) return;
        {
            parameter p{"batch_norm.gamma", gamma_, dgamma_, parameter_kind::norm};
            f(p);
        }
        {
            parameter p{"batch_norm.beta", beta_, dbeta_, parameter_kind::norm};
            f(p);
        }
    }
    /// Visits the running statistics (state that checkpoints keep and the optimizer never touches).
    template <class F>
    void for_each_buffer(F&& f)
    {
        {
            buffer b{"batch_norm.running_mean", running_mean_};
            f(b);
        }
        {
            buffer b{"batch_norm.running_var", running_var_};
            f(b);
        }
    }

private:
    /// Visits rows [r0, r1) and channels [c0, c1) of the tensor in memory order as runs of one channel:
    /// f(channel, data + offset, length, offset). For [N, C] every run has length 1, so that case goes row by row
    /// with the channel loop innermost (f is then called with a length-1 run per element, which the compiler
    /// inlines and vectorises across channels).
    template <class F>
    void for_each_run(std::size_t r0, std::size_t r1, std::size_t inner, std::size_t c0, std::size_t c1, F&& f,
                      float const* data) const
    {
        std::size_t const c = opts_.channels;
        for (std::size_t b = r0; b < r1; ++b) {
            if (inner == 1) {
                std::size_t const row = b * c;
                for (std::size_t ch = c0; ch < c1; ++ch) f(ch, data + row + ch, std::size_t{1}, row + ch);
            } else {
                for (std::size_t ch = c0; ch < c1; ++ch) {
                    std::size_t const off = (b * c + ch) * inner;
                    f(ch, data + off, inner, off);
                }
            }
        }
    }

    /// The sum of f(i) for i < len in double, as 8 interleaved partial sums added in a fixed order at the end:
    /// one running double sum is a chain of dependent adds (4 cycles each) that the compiler may not reorder,
    /// while 8 independent ones vectorise.
    template <class F>
    static double lane_sum(std::size_t len, F&& f) noexcept
    {
        double acc[8] = {};
        std::size_t i = 0;
        for (; i + 8 <= len; i += 8)
            for (std::size_t l = 0; l < 8; ++l) acc[l] += f(i + l);
        for (std::size_t l = 0; i < len; ++i, ++l) acc[l] += f(i);
        return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }

    /// Channels per parallel_for range: about 32 K elements, so that a small layer (a dense layer's [N, C])
    /// stays on the calling thread.
    static std::size_t channel_grain(std::size_t per_channel) noexcept
    {
        return (std::size_t{32768} + per_channel - 1) / per_channel;
    }

    batch_norm_options opts_;
    std::vector<float> gamma_, beta_, dgamma_, dbeta_, running_mean_, running_var_;
    std::vector<float> mean_, inv_std_;
    std::size_t recalibrated_batches_ = 0;  // > 0 while recalibrating: the index of the next batch
    std::vector<float> x_hat_;  // (x - mean) * inv_std of the last training forward pass
    batch_shards const* shards_ = nullptr;  // of the last training forward pass
};

} // namespace lowbit::nn
