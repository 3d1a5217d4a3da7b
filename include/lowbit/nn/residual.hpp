// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::residual<Inner>: y = x + inner(x) (He et al. 2016); dx = dy + inner.backward(dy). The inner
/// block must keep the shape.

#include <lowbit/config.hpp>
#include <lowbit/nn/buffer.hpp>
#include <lowbit/nn/layer_concepts.hpp>

#include <algorithm>
#include <utility>

namespace lowbit::nn {

/// @brief A residual connection around a shape-preserving block (usually a sequential).
template <Layer Inner>
class residual {
public:
    using weight_policies = typename Inner::weight_policies;

    explicit residual(Inner inner) : inner_(std::move(inner)) {}
    Inner& inner() noexcept { return inner_; }

    template <class In>
    In forward(In const& x, forward_context const& ctx)
    {
        In y = inner_.forward(x, ctx);
        if (!std::equal(y.shape().begin(), y.shape().end(), x.shape().begin(), x.shape().end()))
            throw invalid_input("lowbit::nn::residual: shape mismatch: the inner block changed the shape");
        y += x;
        return y;
    }

    template <class Out>
    Out backward(Out const& dy)
    {
        Out dx = inner_.backward(dy);
        dx += dy;
        return dx;
    }

    template <class F> void for_each_weight(F&& f) { inner_.for_each_weight(f); }
    template <class F> void for_each_parameter(F&& f) { inner_.for_each_parameter(f); }
    /// Forwards to the inner block's state tensors (buffer), if it has any.
    template <class F>
    void for_each_buffer(F&& f)
    {
        if constexpr (requires { inner_.for_each_buffer(f); }) inner_.for_each_buffer(f);
    }

private:
    Inner inner_;
};

} // namespace lowbit::nn
