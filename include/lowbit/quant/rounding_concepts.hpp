// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Concepts for rounding policies. Rounding is an open set (CNL style): a user adds a mode with a
/// tag type, one specialisation of `is_rounding_tag`, and a static `round` member.

#include <concepts>
#include <type_traits>

namespace lowbit {

/// @brief Opt-in trait: specialise to `std::true_type` for a type that names a rounding mode.
template <class T>
struct is_rounding_tag : std::false_type {};

/// @brief A type that opted in as a rounding tag.
template <class T>
concept RoundingTag = is_rounding_tag<T>::value;

/// @brief A rounding tag whose `round(t)` maps a real code-domain value to an integer-valued float,
/// with no randomness. Satisfied by nearest_even_t, nearest_away_t, toward_zero_t, floor_t, ceil_t.
template <class T>
concept DeterministicRounding = RoundingTag<T> && requires(float t) {
    { T::round(t) } -> std::same_as<float>;
};

/// @brief A rounding tag whose `round(t, u)` takes a uniform draw u in [0, 1) and must be unbiased:
/// E[round(t, u)] = t. Satisfied by stochastic_t.
template <class T>
concept StochasticRounding = RoundingTag<T> && requires(float t, float u) {
    { T::round(t, u) } -> std::same_as<float>;
};

/// @brief Any rounding policy lowbit can quantize with: deterministic or stochastic.
template <class T>
concept RoundingPolicy = DeterministicRounding<T> || StochasticRounding<T>;

} // namespace lowbit
