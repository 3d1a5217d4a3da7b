// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief What a layer is: it names the weight quantizers it holds, visits its parameters, and (for a given
/// input type) has a forward pass that caches what its backward pass needs.

#include <lowbit/nn/parameter.hpp>

#include <concepts>
#include <cstdint>
#include <tuple>

namespace lowbit::nn {

struct batch_shards;

/// @brief Per-call state of a forward pass.
struct forward_context {
    bool training = true;        ///< batch statistics in BN, quantized forward weights, caches for backward
    std::uint64_t seed = 0;      ///< run seed (stochastic BinaryConnect draws)
    std::uint32_t step = 0;      ///< optimizer step (stochastic BinaryConnect draws)
    /// Data-parallel training: this process's shards of the global batch (nn/batch_shards.hpp); nullptr for
    /// one process. Layers that sum over the batch keep it for their backward pass (valid until then).
    batch_shards const* shards = nullptr;
};

/// @brief A compile-time list of types (the weight quantizers of a model).
template <class... Ts>
struct type_list {};

namespace detail {
template <class... Ls> struct concat;
template <> struct concat<> { using type = type_list<>; };
template <class... As> struct concat<type_list<As...>> { using type = type_list<As...>; };
template <class... As, class... Bs, class... Rest>
struct concat<type_list<As...>, type_list<Bs...>, Rest...> {
    using type = typename concat<type_list<As..., Bs...>, Rest...>::type;
};
} // namespace detail

/// @brief Concatenation of type_lists.
template <class... Ls>
using concat_t = typename detail::concat<Ls...>::type;

/// @brief A layer: it lists the policies of its weights (`weight_policies`, a type_list, empty for layers
/// without weights), visits its weights with `for_each_weight(f)` (f generic: it receives `weight<P>&`)
/// and its other parameters with `for_each_parameter(f)` (f takes a `parameter&`).
template <class L>
concept Layer = requires(L& l, void (*visit)(parameter&)) {
    typename L::weight_policies;
    l.for_each_parameter(visit);
    l.for_each_weight([](auto&) {});
};

/// @brief Tag of `backward(dy, no_input_gradient)`: accumulate the gradients of the layer's parameters and
/// skip the gradient with respect to its input, which nobody reads when the input is the data (a model's
/// first layer): for the MLP's 784-wide first dense layer that is a seventh of a training step's
/// multiply-adds. Layers that can skip it declare the overload (dense, conv2d); sequential passes the tag to
/// its first layer; nn::backward_without_input_gradient falls back to the plain backward pass.
struct no_input_gradient_t {};
inline constexpr no_input_gradient_t no_input_gradient{};

/// @brief The backward pass of `l` for a gradient `dy` whose input gradient is not wanted: the layer's
/// `backward(dy, no_input_gradient)` where it has one, else `backward(dy)` with the result dropped. The
/// parameters' gradients are the same either way.
template <class L, class Out>
void backward_without_input_gradient(L& l, Out const& dy)
{
    if constexpr (requires { l.backward(dy, no_input_gradient); })
        l.backward(dy, no_input_gradient);
    else
        (void)l.backward(dy);
}

/// @brief A layer that accepts inputs of type In: `forward(x, ctx)` gives its output, and
/// `backward(dy)` the gradient with respect to the input of the last forward pass (accumulating the
/// gradients of its parameters).
template <class L, class In>
concept LayerFor = Layer<L> && requires(L& l, In const& x, forward_context const& ctx) {
    l.forward(x, ctx);
    { l.backward(l.forward(x, ctx)) } -> std::convertible_to<In>;
};

} // namespace lowbit::nn
