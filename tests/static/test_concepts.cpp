// SPDX-License-Identifier: MIT
// Compile-time batteries: every concept accepts what it should and rejects what it should. The file's
// content is checked by the compiler; the single runtime case only makes ctest count it.
#include <lowbit/lowbit.hpp>

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>

namespace {
using namespace lowbit;

struct not_a_tag {
    static float round(float t) { return t; }
};
struct tag_without_round {};
struct my_rounding {
    static float round(float t) noexcept { return std::floor(t + 0.5f); }
};
} // namespace
template <> struct lowbit::is_rounding_tag<my_rounding> : std::true_type {};
template <> struct lowbit::is_rounding_tag<tag_without_round> : std::true_type {};

namespace {
// Rounding: an open set through a trait + concept.
static_assert(DeterministicRounding<nearest_even_t> && DeterministicRounding<nearest_away_t> &&
              DeterministicRounding<toward_zero_t> && DeterministicRounding<floor_t> && DeterministicRounding<ceil_t>);
static_assert(StochasticRounding<stochastic_t> && !DeterministicRounding<stochastic_t>);
static_assert(!StochasticRounding<nearest_even_t>);
static_assert(RoundingPolicy<my_rounding> && DeterministicRounding<my_rounding>);
static_assert(!RoundingPolicy<not_a_tag>);          // has round() but did not opt in
static_assert(!RoundingPolicy<tag_without_round>);  // opted in but has no round()
static_assert(!RoundingPolicy<int>);

// Grids.
static_assert(Grid<grid::binary> && Grid<grid::symmetric_odd> && Grid<grid::symmetric_even> &&
              Grid<grid::unsigned_int> && Grid<grid::signed_int>);
static_assert(!Grid<int> && !Grid<nearest_even_t>);

// Clipping.
static_assert(ClippingPolicy<clip::fixed_range> && ClippingPolicy<clip::max_abs> && ClippingPolicy<clip::mean_abs> &&
              ClippingPolicy<clip::l2_optimal> && ClippingPolicy<clip::tanh_max>);
static_assert(TransformingClipping<clip::tanh_max> && !TransformingClipping<clip::max_abs>);
static_assert(!ClippingPolicy<int> && !ClippingPolicy<grid::binary>);

// Granularity and overflow.
static_assert(Granularity<per_tensor_t> && Granularity<per_channel_t> && !Granularity<int>);
static_assert(OverflowPolicy<saturate_t> && OverflowPolicy<wrap_t> && !OverflowPolicy<per_tensor_t>);

// Quantizers, for every bit width.
template <int... Bits>
constexpr bool all_quantizers(std::integer_sequence<int, Bits...>)
{
    return (Quantizer<quantizer<Bits + 1>> && ...) && (Quantizer<quantizer<Bits + 1, stochastic_t>> && ...);
}
static_assert(all_quantizers(std::make_integer_sequence<int, 8>{}));
static_assert(StochasticQuantizer<quantizer<2, stochastic_t>> && !StochasticQuantizer<quantizer<2>>);
static_assert(DeterministicQuantizer<quantizer<2>> && !DeterministicQuantizer<quantizer<2, stochastic_t>>);
static_assert(Quantizer<quantizer<3, my_rounding, clip::l2_optimal, grid::symmetric_even, per_channel_t, wrap_t>>);
static_assert(!Quantizer<int> && !Quantizer<clip::max_abs>);
static_assert(is_packed_bit_width_v<1> && is_packed_bit_width_v<8> && !is_packed_bit_width_v<0> &&
              !is_packed_bit_width_v<9>);

// Quantized tensors.
static_assert(QuantizedTensor<qtensor<quantizer<4>>> && !QuantizedTensor<xt::xtensor<float, 1>>);
} // namespace

TEST_CASE("concept batteries compiled")
{
    CHECK(bit_width_v<quantizer<5>> == 5);
}
