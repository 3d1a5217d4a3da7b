// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Concepts for training methods. A method names the state it keeps layer weights in
/// (nn/weight_state.hpp) and checks at compile time that it can train a model with the given weight policies.

#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/weight.hpp>
#include <lowbit/nn/weight_state.hpp>
#include <lowbit/random/philox.hpp>

#include <concepts>
#include <span>
#include <string_view>

namespace lowbit::train {

/// @brief A training method: the `weight_state` it keeps weights in (nn::float_state, nn::shadow_state or
/// nn::packed_state), a `name()`, and its update rule `update(w, s, key)`: what one optimizer step s does to a
/// weight w in that state (key: the step's stochastic draws).
/// Satisfied by full_precision, binary_connect, stochastic_rounding, rounded, sat and sqwa.
template <class M>
concept TrainingMethod = std::semiregular<M> && requires(nn::weight<nn::float_weights_t>& w, std::span<float const> s,
                                                          random::counter_key key) {
    requires nn::WeightState<typename M::weight_state>;
    { M::name() } -> std::convertible_to<std::string_view>;
    M::update(w, s, key);  // the method's update rule for one weight, given the optimizer's step s
};

/// @brief A method whose update rule is w <- project(w - s) on float values: it names the projection as
/// `M::project(w)` (full_precision: none; binary_connect: the clip to the grid's range), and its `update` is
/// `w.subtract(s)` followed by it. The trainer may then let an optimizer that applies its step in place
/// (optim::AppliesStep) do the subtraction, in the same pass as the step, and call `project` after it: the
/// same values, one pass over the weights fewer.
template <class M>
concept SubtractingMethod = TrainingMethod<M> && requires(nn::weight<nn::float_weights_t>& w) { M::project(w); };

/// @brief A method that keeps float shadow weights next to the quantized forward weights
/// (binary_connect and the QAT methods built on it). SQWA and SAT wrap only these.
template <class M>
concept ShadowWeightMethod = TrainingMethod<M> && std::same_as<typename M::weight_state, nn::shadow_state>;

/// @brief A method that stores weights only as packed codes (stochastic_rounding, rounded).
template <class M>
concept PackedWeightMethod = TrainingMethod<M> && std::same_as<typename M::weight_state, nn::packed_state>;

namespace detail {
/// The update of a packed-weight method (SR, R): w <- Q(w - s) onto the fixed grid with the policy's rounding;
/// a weight whose policy is float stays float, w <- w - s.
template <class Weight>
void step_packed(Weight& w, std::span<float const> s, random::counter_key key)
{
    if (w.template holds<nn::packed_state>())
        w.step_on_grid(s, key);
    else
        w.subtract(s);
}

template <class P> inline constexpr bool is_float_policy = std::same_as<P, nn::float_weights_t>;
template <class List, template <class> class Pred> struct all_of;
template <class... Ps, template <class> class Pred>
struct all_of<nn::type_list<Ps...>, Pred> : std::bool_constant<(Pred<Ps>::value && ...)> {};

template <class P> struct stochastic_or_float : std::bool_constant<is_float_policy<P> || StochasticQuantizer<P>> {};
template <class P> struct deterministic_or_float : std::bool_constant<is_float_policy<P> || DeterministicQuantizer<P>> {};
} // namespace detail

} // namespace lowbit::train
