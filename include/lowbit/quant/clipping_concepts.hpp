// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Concepts for clipping (range) policies: where the clipping bound `a` of a grid comes from.

#include <lowbit/quant/grid_concepts.hpp>

#include <concepts>
#include <span>

namespace lowbit {

/// @brief A clipping policy: an object whose `range(values, levels)` returns the clipping bound a >= 0
/// for a slice of values (one tensor, or one output channel) on a grid with those levels. Values beyond
/// the bound saturate to the outermost level (or wrap, with overflow::wrap).
template <class C>
concept ClippingPolicy = std::semiregular<C> && requires(C const& c, std::span<float const> x, level_range l) {
    { c.range(x, l) } -> std::convertible_to<float>;
};

/// @brief A clipping policy that first maps the values (DoReFa's tanh normalisation) and then clips the
/// mapped values.
template <class C>
concept TransformingClipping = ClippingPolicy<C> && requires(C const& c, std::span<float const> in, std::span<float> out) {
    c.transform(in, out);
};

} // namespace lowbit
