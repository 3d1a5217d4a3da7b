// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Get/set trait pairs on quantizers (CNL style), over the read-only vocabulary of policy_traits.hpp: read one policy, or make the same quantizer with
/// one policy changed. BinaryConnect's forward quantizer is `set_bit_width_t<Q, 1>`; stochastic
/// rounding's is `set_rounding_t<Q, stochastic_t>`.
///
/// @code
/// using w2  = lowbit::quantizer<2, lowbit::nearest_even_t, lowbit::clip::l2_optimal>;
/// using w2s = lowbit::set_rounding_t<w2, lowbit::stochastic_t>;
/// static_assert(std::is_same_v<lowbit::rounding_t<w2s>, lowbit::stochastic_t>);
/// @endcode

#include <lowbit/quant/policy_traits.hpp>
#include <lowbit/quant/quantizer.hpp>

#include <type_traits>

namespace lowbit {

// bit_width_v, rounding_t, grid_t, granularity_t and bound_t read any policy (policy_traits.hpp); these two are
// lowbit::quantizer's own.
template <Quantizer Q> using clipping_t = typename Q::clipping_type;
template <Quantizer Q> using overflow_t = typename Q::overflow_type;

/// @brief True for specialisations of lowbit::quantizer.
template <class T>
struct is_quantizer_template : std::false_type {};
template <int B, class R, class C, class G, class Gr, class O>
struct is_quantizer_template<quantizer<B, R, C, G, Gr, O>> : std::true_type {};

template <class Q, int NewBits> struct set_bit_width;
/// A grid that was the default for the old width is re-derived for the new one, so that
/// set_bit_width_t<ternary, 1> is binary rather than an invalid 1-bit symmetric_odd grid.
template <int B, class R, class C, class G, class Gr, class O, int NewBits>
struct set_bit_width<quantizer<B, R, C, G, Gr, O>, NewBits> {
    using type = quantizer<NewBits, R, C,
                           std::conditional_t<std::is_same_v<G, default_grid_t<B, C>>, default_grid_t<NewBits, C>, G>,
                           Gr, O>;
};
template <class Q, class NewRounding> struct set_rounding;
template <int B, class R, class C, class G, class Gr, class O, class NR>
struct set_rounding<quantizer<B, R, C, G, Gr, O>, NR> { using type = quantizer<B, NR, C, G, Gr, O>; };
template <class Q, class NewClipping> struct set_clipping;
template <int B, class R, class C, class G, class Gr, class O, class NC>
struct set_clipping<quantizer<B, R, C, G, Gr, O>, NC> { using type = quantizer<B, R, NC, G, Gr, O>; };
template <class Q, class NewGrid> struct set_grid;
template <int B, class R, class C, class G, class Gr, class O, class NG>
struct set_grid<quantizer<B, R, C, G, Gr, O>, NG> { using type = quantizer<B, R, C, NG, Gr, O>; };
template <class Q, class NewGranularity> struct set_granularity;
template <int B, class R, class C, class G, class Gr, class O, class NGr>
struct set_granularity<quantizer<B, R, C, G, Gr, O>, NGr> { using type = quantizer<B, R, C, G, NGr, O>; };
template <class Q, class NewOverflow> struct set_overflow;
template <int B, class R, class C, class G, class Gr, class O, class NO>
struct set_overflow<quantizer<B, R, C, G, Gr, O>, NO> { using type = quantizer<B, R, C, G, Gr, NO>; };

/// @brief Q with bit width NewBits.
template <class Q, int NewBits> using set_bit_width_t = typename set_bit_width<Q, NewBits>::type;
/// @brief Q with rounding policy R.
template <class Q, class R> using set_rounding_t = typename set_rounding<Q, R>::type;
/// @brief Q with clipping policy C.
template <class Q, class C> using set_clipping_t = typename set_clipping<Q, C>::type;
/// @brief Q with grid G.
template <class Q, class G> using set_grid_t = typename set_grid<Q, G>::type;
/// @brief Q with granularity G.
template <class Q, class G> using set_granularity_t = typename set_granularity<Q, G>::type;
/// @brief Q with overflow policy O.
template <class Q, class O> using set_overflow_t = typename set_overflow<Q, O>::type;

} // namespace lowbit
