// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::quantize_activation<Q>: a layer that fake-quantizes its input with a lowbit::ste quantizer
/// (PACT, CG-PACT, LSQ, DoReFa activations) -- forward y = Q(x), backward through Q's straight-through
/// estimator -- and exposes Q's learned bound (alpha, step) as a parameter of kind `clipping`, which gets no
/// weight decay. Placed before a dense or conv layer, it quantizes that layer's input activations, as
/// PACT and SAT do (ReLU, clip at alpha, quantize).
///
/// @code
/// lowbit::nn::sequential block{lowbit::nn::quantize_activation(lowbit::ste::pact<4>({.alpha = 8.0f})),
///                              lowbit::nn::dense<>({.in = 16, .out = 4})};
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/nn/batch_shards.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>

#include <xtensor/xtensor.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <utility>

namespace lowbit::nn {

/// @brief Fake quantization of activations with a learned or fixed ste quantizer.
template <ste::FakeQuantizer Q>
class quantize_activation {
public:
    using weight_policies = type_list<>;

    explicit quantize_activation(Q q = Q{}) : q_(std::move(q)) {}
    Q& quantizer() noexcept { return q_; }

    template <std::size_t Rank>
    xt::xtensor<float, Rank> forward(xt::xtensor<float, Rank> const& x, forward_context const& ctx)
    {
        if constexpr (ste::LearnedFakeQuantizer<Q>) {
            // The learned bound's gradient is one sum over the whole tensor (the quantizer keeps its input for
            // the backward pass), so it cannot be split into the shards of one process (nn/batch_shards.hpp).
            if (ctx.training && ctx.shards != nullptr && ctx.shards->count() > 1 && !q_.parameters().empty())
                throw invalid_input("lowbit::nn::quantize_activation: a learned activation bound (" +
                                    std::string(ste::parameter_name_of(q_)) + ") needs one shard per process in "
                                    "data-parallel training; this process holds " +
                                    std::to_string(ctx.shards->count()) + " (use as many shards as processes)");
        }
        xt::xtensor<float, Rank> y = xt::xtensor<float, Rank>::from_shape(x.shape());
        q_.forward(std::span<float const>(x.data(), x.size()), std::span<float>(y.data(), y.size()));
        return y;
    }

    template <std::size_t Rank>
    xt::xtensor<float, Rank> backward(xt::xtensor<float, Rank> const& dy)
    {
        xt::xtensor<float, Rank> dx = xt::xtensor<float, Rank>::from_shape(dy.shape());
        q_.backward(std::span<float const>(dy.data(), dy.size()), std::span<float>(dx.data(), dx.size()));
        return dx;
    }

    template <class F>
    void for_each_weight(F&&)
    {
    }
    template <class F>
    void for_each_parameter(F&& f)
    {
        if constexpr (ste::LearnedFakeQuantizer<Q>) {
            if (q_.parameters().empty()) return;  // an erased quantizer that learns nothing
            parameter p{ste::parameter_name_of(q_), q_.parameters(), q_.gradients(), parameter_kind::clipping};
            f(p);
        }
    }

private:
    Q q_;
};

} // namespace lowbit::nn
