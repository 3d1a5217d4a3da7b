// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The states a layer weight (nn::weight) is held in, as tag types. A training method names the state it
/// keeps (`using weight_state = nn::packed_state;`), the trainer binds it to every weight of the model
/// (`w.bind(typename Method::weight_state{}, stream, seed)`), and the weight then holds the data of that state
/// and nothing else:
///
/// | state           | data held                           | forward uses                 | methods              |
/// |-----------------|-------------------------------------|------------------------------|----------------------|
/// | float_state     | float w                             | w                            | full_precision       |
/// | shadow_state    | float shadow w, Q(w) of the last    | Q(w) (stochastic Q: w at     | binary_connect, sat, |
/// |                 | training forward pass               | evaluation, as BC does)      | sqwa, QAT            |
/// | packed_state    | only the packed codes of Q(w) and   | the codes, dequantized       | stochastic_rounding, |
/// |                 | their grid steps (a qtensor<Q>)     |                              | rounded              |
///
/// A weight with a quantizing policy is built in shadow_state, so that a layer computes with Q(w) before any
/// method binds it; a float policy (nn::float_weights_t) stays in float_state whatever is bound. Each state's
/// update rule belongs to the method (train/: its `update(w, s, key)`).
///
/// @code
/// struct my_method {
///     using weight_state = lowbit::nn::shadow_state;   // float shadow weights plus Q(w)
///     ...
/// };
/// @endcode

#include <concepts>
#include <string_view>

namespace lowbit::nn {

/// @brief Float values only: the weight is not quantized (full-precision training).
struct float_state {
    static constexpr std::string_view name = "float";
};
/// @brief Float shadow values w and their quantized forward values Q(w) (BinaryConnect and the QAT methods).
struct shadow_state {
    static constexpr std::string_view name = "shadow";
};
/// @brief Only the packed codes of Q(w) on a grid fixed when the state is bound (Li et al.'s SR and R): the
/// weight takes bits/32 of the float bytes.
struct packed_state {
    static constexpr std::string_view name = "packed";
};

/// @brief One of the weight states above: what a training method's `weight_state` must name.
template <class S>
concept WeightState = std::same_as<S, float_state> || std::same_as<S, shadow_state> || std::same_as<S, packed_state>;

} // namespace lowbit::nn
