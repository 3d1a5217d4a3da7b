// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::sequential<Layers...>: a typed chain of layers. Its forward pass folds the input through
/// every layer; its backward pass runs them in reverse. Input and output types may change along the chain
/// (conv layers on [N, C, H, W], flatten, dense layers on [N, F]); a wrong chain is a compile error.
///
/// @code
/// using w1 = lowbit::quantizer<1, lowbit::stochastic_t, lowbit::clip::fixed_range>;
/// lowbit::nn::sequential model{lowbit::nn::dense<w1>({.in = 784, .out = 256}),
///                              lowbit::nn::batch_norm<2>({.channels = 256}), lowbit::nn::relu{},
///                              lowbit::nn::dense<>({.in = 256, .out = 10})};
/// @endcode

#include <lowbit/nn/buffer.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/parameter.hpp>

#include <cstddef>
#include <tuple>
#include <utility>

namespace lowbit::nn {

/// @brief A typed sequence of layers; itself a layer.
template <Layer... Layers>
class sequential {
public:
    using weight_policies = concat_t<typename Layers::weight_policies...>;
    static constexpr std::size_t size = sizeof...(Layers);

    explicit sequential(Layers... layers) : layers_(std::move(layers)...) {}

    template <std::size_t I>
    auto& layer() noexcept
    {
        return std::get<I>(layers_);
    }

    template <class In>
    auto forward(In const& x, forward_context const& ctx)
    {
        return forward_from<0>(x, ctx);
    }

    template <class Out>
    auto backward(Out const& dy)
    {
        return backward_from<size - 1>(dy);
    }

    /// The backward pass without the input gradient (see no_input_gradient_t): the first layer skips it.
    template <class Out>
    void backward(Out const& dy, no_input_gradient_t)
    {
        backward_without_input_gradient_from<size - 1>(dy);
    }

    /// Calls f(layer) for every layer, in order (nested sequentials are visited as one layer).
    template <class F>
    void for_each_layer(F&& f)
    {
        std::apply([&](auto&... l) { (f(l), ...); }, layers_);
    }
    /// Calls f(layer) for every layer that is not a sequential, depth first (through nested sequentials and
    /// residual blocks).
    template <class F>
    void for_each_leaf(F&& f)
    {
        std::apply([&](auto&... l) { (visit_leaf(l, f), ...); }, layers_);
    }

    template <class F>
    void for_each_weight(F&& f)
    {
        std::apply([&](auto&... l) { (l.for_each_weight(f), ...); }, layers_);
    }
    template <class F>
    void for_each_parameter(F&& f)
    {
        std::apply([&](auto&... l) { (l.for_each_parameter(f), ...); }, layers_);
    }
    /// Calls f(buffer&) for the state tensors of every layer that has some (BatchNorm's running
    /// statistics); layers without a for_each_buffer are skipped, so they need not declare one.
    template <class F>
    void for_each_buffer(F&& f)
    {
        std::apply([&](auto&... l) { (visit_buffers(l, f), ...); }, layers_);
    }

private:
    template <class L, class F>
    static void visit_buffers(L& l, F& f)
    {
        if constexpr (requires { l.for_each_buffer(f); }) l.for_each_buffer(f);
    }

    template <class L, class F>
    static void visit_leaf(L& l, F& f)
    {
        if constexpr (requires { l.for_each_leaf(f); })
            l.for_each_leaf(f);
        else if constexpr (requires { l.inner(); })
            visit_leaf(l.inner(), f);
        else
            f(l);
    }

    template <std::size_t I, class In>
    auto forward_from(In const& x, forward_context const& ctx)
    {
        if constexpr (I + 1 == size)
            return std::get<I>(layers_).forward(x, ctx);
        else
            return forward_from<I + 1>(std::get<I>(layers_).forward(x, ctx), ctx);
    }

    template <std::size_t I, class Out>
    auto backward_from(Out const& dy)
    {
        if constexpr (I == 0)
            return std::get<0>(layers_).backward(dy);
        else
            return backward_from<I - 1>(std::get<I>(layers_).backward(dy));
    }

    template <std::size_t I, class Out>
    void backward_without_input_gradient_from(Out const& dy)
    {
        if constexpr (I == 0)
            backward_without_input_gradient(std::get<0>(layers_), dy);
        else
            backward_without_input_gradient_from<I - 1>(std::get<I>(layers_).backward(dy));
    }

    std::tuple<Layers...> layers_;
};

} // namespace lowbit::nn
