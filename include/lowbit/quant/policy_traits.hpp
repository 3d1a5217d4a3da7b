// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief policy_traits<P>: the one vocabulary in which every precision policy -- lowbit::quantizer<>, every
/// lowbit::ste fake quantizer, nn::float_weights_t, and a user's own type -- states its bit width, grid and
/// levels, rounding, granularity (the scale's reach: one step per tensor or per output channel), and where
/// its bound comes from (fixed, from the data, learned). The trainer, deploy and lowbit::summary read policies
/// only through it, never through a list of known types.
///
/// A type states its traits as members (what every lowbit::ste type does):
/// @code
/// struct my_binary_weight {                       // plus forward / backward / bind (ste::FakeQuantizer)
///     static constexpr int bits = 1;
///     using grid_type = lowbit::grid::binary;     // Q(w) = +-step/2 per channel
///     using rounding_type = lowbit::nearest_even_t;
///     using granularity_type = lowbit::per_channel_t;
///     using bound_type = lowbit::data_bound_t;    // the step follows the weights
/// };
/// static_assert(lowbit::bit_width_v<my_binary_weight> == 1);
/// @endcode
/// or specialises lowbit::policy_traits. A policy that keeps float values says `bits = float_bits` and
/// `grid_type = void`. lowbit::quantizer's traits are its own parameters, with the bound named by its clipping
/// policy's `bound_type` (a clipping policy that names none is taken as data-derived, the general case).

#include <lowbit/quant/bit_width.hpp>
#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/granularity.hpp>
#include <lowbit/quant/grid_concepts.hpp>
#include <lowbit/quant/quantizer_concepts.hpp>
#include <lowbit/quant/rounding_concepts.hpp>

#include <concepts>
#include <type_traits>

namespace lowbit {

/// @brief The bit width policy_traits gives a policy whose values stay float.
inline constexpr int float_bits = 32;

namespace detail {
template <class P>
concept states_policy_traits = requires {
    { P::bits } -> std::convertible_to<int>;
    typename P::grid_type;
    typename P::rounding_type;
    typename P::granularity_type;
    typename P::bound_type;
};

template <class C>
struct clipping_bound {
    using type = data_bound_t;
};
template <class C>
    requires requires { typename C::bound_type; }
struct clipping_bound<C> {
    using type = typename C::bound_type;
};
} // namespace detail

/// @brief The traits of a policy that keeps float values, for a float policy type to derive from
/// (nn::float_weights_t, nn::float_activations_t).
struct float_policy {
    static constexpr int bits = float_bits;
    using grid_type = void;
    using rounding_type = void;
    using granularity_type = per_tensor_t;
    using bound_type = no_bound_t;
};

/// @brief The traits of precision policy P (see the file comment). Defined for lowbit::Quantizer types and
/// for types that state the five members; specialise it for a type that cannot.
template <class P>
struct policy_traits;

/// @brief The traits a policy states as members.
template <class P>
    requires detail::states_policy_traits<P> && (!Quantizer<P>)
struct policy_traits<P> {
    static constexpr int bits = P::bits;
    using grid_type = typename P::grid_type;
    using rounding_type = typename P::rounding_type;
    using granularity_type = typename P::granularity_type;
    using bound_type = typename P::bound_type;
};

/// @brief A lowbit::Quantizer's traits: its own parameters; the bound is named by its clipping policy.
template <Quantizer Q>
struct policy_traits<Q> {
    static constexpr int bits = Q::bits;
    using grid_type = typename Q::grid_type;
    using rounding_type = typename Q::rounding_type;
    using granularity_type = typename Q::granularity_type;
    using bound_type = typename detail::clipping_bound<typename Q::clipping_type>::type;
};

/// @brief A policy whose traits are known, and consistent: a float policy (bits = float_bits, no grid, no
/// bound) or a quantizing one (bits 1..16, a Grid, a rounding policy, a bound tag).
template <class P>
concept PrecisionPolicy =
    requires {
        { policy_traits<P>::bits } -> std::convertible_to<int>;
        typename policy_traits<P>::grid_type;
        typename policy_traits<P>::rounding_type;
        typename policy_traits<P>::granularity_type;
        typename policy_traits<P>::bound_type;
    } &&
    Granularity<typename policy_traits<P>::granularity_type> &&
    ((policy_traits<P>::bits == float_bits && std::is_void_v<typename policy_traits<P>::grid_type> &&
      std::same_as<typename policy_traits<P>::bound_type, no_bound_t>) ||
     (policy_traits<P>::bits >= 1 && policy_traits<P>::bits <= 16 && Grid<typename policy_traits<P>::grid_type> &&
      RoundingPolicy<typename policy_traits<P>::rounding_type> &&
      (std::same_as<typename policy_traits<P>::bound_type, fixed_bound_t> ||
       std::same_as<typename policy_traits<P>::bound_type, data_bound_t> ||
       std::same_as<typename policy_traits<P>::bound_type, learned_bound_t>)));

/// @brief A policy that maps values onto a grid (bit width below float_bits).
template <class P>
concept QuantizingPolicy = PrecisionPolicy<P> && (policy_traits<P>::bits < float_bits);

/// @brief Bit width of a policy (float_bits for one that keeps float values).
template <PrecisionPolicy P>
inline constexpr int bit_width_v = policy_traits<P>::bits;

/// @brief The levels of a quantizing policy's grid at its bit width: level k stands for (k + offset) * step.
/// Grids define them at the packed widths, 1..8 bits; a fake quantizer of more bits (ste::dorefa_weight<12>) has
/// none.
template <QuantizingPolicy P>
    requires(policy_traits<P>::bits <= max_packed_bits)
inline constexpr level_range levels_v = policy_traits<P>::grid_type::template levels<policy_traits<P>::bits>();

/// @brief Whether a policy's bound is a trained parameter.
template <PrecisionPolicy P>
inline constexpr bool learned_bound_v = std::same_as<typename policy_traits<P>::bound_type, learned_bound_t>;

/// @brief Whether a policy rounds stochastically.
template <PrecisionPolicy P>
inline constexpr bool stochastic_v = QuantizingPolicy<P> && StochasticRounding<typename policy_traits<P>::rounding_type>;

template <PrecisionPolicy P> using rounding_t = typename policy_traits<P>::rounding_type;
template <PrecisionPolicy P> using grid_t = typename policy_traits<P>::grid_type;
template <PrecisionPolicy P> using granularity_t = typename policy_traits<P>::granularity_type;
template <PrecisionPolicy P> using bound_t = typename policy_traits<P>::bound_type;

} // namespace lowbit
