// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::dense<WeightPolicy>: a fully connected layer, y = x W^T + b, on [batch, features] tensors.
///
/// The forward pass multiplies by the weight's forward values (Q(w) for quantized training, see
/// nn/weight.hpp); the backward pass is the straight-through estimator: the gradient with respect to
/// Q(w) is used as the gradient of w (Courbariaux et al. 2015), and the input gradient is dY Q(w).

#include <lowbit/config.hpp>
#include <lowbit/kernels/gemm.hpp>
#include <lowbit/nn/batch_shards.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>
#include <lowbit/nn/weight.hpp>

#include <xtensor/xtensor.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace lowbit::nn {

/// @brief How dense and conv weights are initialised.
enum class init : std::uint8_t {
    glorot_uniform,  ///< U(-sqrt(6/(fan_in+fan_out)), +...) (BinaryConnect's H is half of that bound)
    he_normal,       ///< N(0, 2/fan_in)
    uniform_unit,    ///< U(-1, 1), as the PyTorch peer does for binary weights on the grid over [-1, 1]
};

/// @brief Options of a dense layer.
struct dense_options {
    std::size_t in = 0;
    std::size_t out = 0;
    bool bias = true;
    nn::init init = nn::init::glorot_uniform;
    std::uint64_t seed = 0;  ///< initialisation seed (each layer of a model should get its own)
};

namespace detail {
inline void initialise(std::span<float> w, std::size_t fan_in, std::size_t fan_out, init how, std::uint64_t seed)
{
    std::mt19937_64 gen(seed);
    if (how == init::he_normal) {
        std::normal_distribution<float> d(0.0f, std::sqrt(2.0f / static_cast<float>(fan_in)));
        for (float& v : w) v = d(gen);
        return;
    }
    float const bound = how == init::uniform_unit ? 1.0f : std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
    std::uniform_real_distribution<float> d(-bound, bound);
    for (float& v : w) v = d(gen);
}

inline void check_shape(char const* layer, std::size_t got, std::size_t want)
{
    if (got != want)
        throw invalid_input(std::string("lowbit::nn::") + layer + ": shape mismatch: expected " + std::to_string(want) +
                            " input features, got " + std::to_string(got));
}
} // namespace detail

/// @brief A fully connected layer whose weight follows the policy W (a Quantizer, or float_weights_t).
template <WeightPolicy W = float_weights_t>
class dense {
public:
    using weight_policies = type_list<W>;
    using input_type = xt::xtensor<float, 2>;
    using output_type = xt::xtensor<float, 2>;

    explicit dense(dense_options o, W policy = {})
        : opts_(o), w_({o.out, o.in}, policy), b_(o.bias ? o.out : 0, 0.0f), db_(b_.size(), 0.0f)
    {
        if (o.in == 0 || o.out == 0) throw invalid_input("lowbit::nn::dense: in and out must be positive");
        detail::initialise(w_.master(), o.in, o.out, o.init, o.seed);
    }

    dense_options const& options() const noexcept { return opts_; }
    nn::weight<W>& weight() noexcept { return w_; }
    nn::weight<W> const& weight() const noexcept { return w_; }
    std::span<float> bias() noexcept { return b_; }

    /// y = x W^T + b; x is [batch, in].
    output_type forward(input_type const& x, forward_context const& ctx)
    {
        detail::check_shape("dense", x.shape(1), opts_.in);
        std::size_t const batch = x.shape(0);
        output_type y = output_type::from_shape({batch, opts_.out});
        auto const wv = w_.forward_values(ctx, !b_.empty());
        for_each_shard(ctx.shards, batch, [&](std::size_t r0, std::size_t r1) {
            kernels::sgemm(kernels::transpose::no, kernels::transpose::yes, r1 - r0, opts_.out, opts_.in, 1.0f,
                           x.data() + r0 * opts_.in, opts_.in, wv.data(), opts_.in, 0.0f, y.data() + r0 * opts_.out,
                           opts_.out);
        });
        if (!b_.empty()) {
            // SAT in evaluation: unscaled weights and bias / scale (weight::folds_scale_into_bias).
            float const s = w_.eval_output_scale();
            for (std::size_t i = 0; i < batch; ++i)
                for (std::size_t j = 0; j < opts_.out; ++j) y(i, j) += s == 1.0f ? b_[j] : b_[j] / s;
        }
        if (ctx.training) {
            x_ = x;
            shards_ = ctx.shards;
        }
        return y;
    }

    /// Accumulates dW = dY^T x and db = sum dY; returns dX = dY W.
    input_type backward(output_type const& dy)
    {
        backward(dy, no_input_gradient);
        std::size_t const batch = dy.shape(0);
        input_type dx = input_type::from_shape({batch, opts_.in});
        auto const wv = w_.backward_values();
        for_each_shard(shards_, batch, [&](std::size_t r0, std::size_t r1) {
            kernels::sgemm(kernels::transpose::no, kernels::transpose::no, r1 - r0, opts_.in, opts_.out, 1.0f,
                           dy.data() + r0 * opts_.out, opts_.out, wv.data(), opts_.in, 0.0f, dx.data() + r0 * opts_.in,
                           opts_.in);
        });
        return dx;
    }

    /// Accumulates dW = dY^T x and db = sum dY only (a first layer: see no_input_gradient_t). In data-parallel
    /// training each shard of the batch gets its own sum (nn/batch_shards.hpp).
    void backward(output_type const& dy, no_input_gradient_t)
    {
        std::size_t const batch = dy.shape(0), in = opts_.in, out = opts_.out;
        auto weight_sum = [&](std::size_t r0, std::size_t r1, std::span<float> g, std::size_t) {
            if (r1 > r0)
                kernels::sgemm(kernels::transpose::yes, kernels::transpose::no, out, in, r1 - r0, 1.0f,
                               dy.data() + r0 * out, out, x_.data() + r0 * in, in, 1.0f, g.data(), in);
        };
        auto bias_sum = [&](std::size_t r0, std::size_t r1, std::span<float> db, std::size_t) {
            for (std::size_t i = r0; i < r1; ++i)
                for (std::size_t j = 0; j < db.size(); ++j) db[j] += dy(i, j);
        };
        accumulate_over_shards(shards_, batch, w_.grad(), weight_sum);
        accumulate_over_shards(shards_, batch, std::span<float>(db_), bias_sum);
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
            parameter p{"dense.bias", b_, db_, parameter_kind::bias};
            f(p);
        }
    }

private:
    dense_options opts_;
    nn::weight<W> w_;
    std::vector<float> b_, db_;
    input_type x_;
    batch_shards const* shards_ = nullptr;  // of the last training forward pass
};

} // namespace lowbit::nn
