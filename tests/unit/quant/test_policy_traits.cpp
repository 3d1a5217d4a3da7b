// SPDX-License-Identifier: MIT
// policy_traits: one vocabulary for lowbit::quantizer, every lowbit::ste policy, the float policies and a user's
// own type; policy_info, its run-time form, for ste::any_quantizer.
#include <lowbit/lowbit.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/quant/policy_info.hpp>
#include <lowbit/quant/ste/ste.hpp>

#include <doctest/doctest.h>

#include <span>
#include <type_traits>

using namespace lowbit;

namespace {
/// A user's policy that states its traits (and nothing of lowbit's): a binary weight with a learned scale.
struct user_binary {
    static constexpr int bits = 1;
    using grid_type = grid::binary;
    using rounding_type = nearest_even_t;
    using granularity_type = per_channel_t;
    using bound_type = learned_bound_t;
    void forward(std::span<float const> x, std::span<float> y) { std::copy(x.begin(), x.end(), y.begin()); }
    void backward(std::span<float const> dy, std::span<float> dx) { std::copy(dy.begin(), dy.end(), dx.begin()); }
    void bind(std::span<std::size_t const>) {}
};
/// A fake quantizer that states nothing.
struct silent {
    void forward(std::span<float const> x, std::span<float> y) { std::copy(x.begin(), x.end(), y.begin()); }
    void backward(std::span<float const> dy, std::span<float> dx) { std::copy(dy.begin(), dy.end(), dx.begin()); }
    void bind(std::span<std::size_t const>) {}
};
} // namespace

// lowbit::quantizer: its own parameters, the bound named by the clipping policy.
using sr1 = quantizer<1, stochastic_t, clip::fixed_range>;
static_assert(PrecisionPolicy<sr1> && bit_width_v<sr1> == 1 && stochastic_v<sr1>);
static_assert(std::is_same_v<grid_t<sr1>, grid::binary> && std::is_same_v<bound_t<sr1>, fixed_bound_t>);
using sqwa2 = quantizer<2, nearest_even_t, clip::l2_optimal>;
static_assert(std::is_same_v<bound_t<sqwa2>, data_bound_t> && levels_v<sqwa2> == level_range{-1, 1, 0.0f});
static_assert(std::is_same_v<bound_t<quantizer<3, nearest_even_t, clip::tanh_max>>, fixed_bound_t>);
static_assert(!stochastic_v<sqwa2> && !learned_bound_v<sqwa2>);

// lowbit::ste: every weight and activation policy.
static_assert(bit_width_v<ste::xnor_weight<>> == 1 && std::is_same_v<grid_t<ste::xnor_weight<>>, grid::binary>);
static_assert(std::is_same_v<granularity_t<ste::xnor_weight<>>, per_channel_t>);
static_assert(std::is_same_v<bound_t<ste::xnor_weight<>>, data_bound_t>);
static_assert(std::is_same_v<grid_t<ste::dorefa_weight<1>>, grid::binary>);
static_assert(std::is_same_v<grid_t<ste::dorefa_weight<4>>, grid::symmetric_even> &&
              std::is_same_v<bound_t<ste::dorefa_weight<4>>, fixed_bound_t>);
static_assert(levels_v<ste::dorefa_weight<2>> == level_range{-2, 1, 0.5f});
static_assert(std::is_same_v<grid_t<ste::dorefa_activation<4>>, grid::unsigned_int>);
static_assert(learned_bound_v<ste::pact<4>> && learned_bound_v<ste::pact<2, ste::alpha_gradient::calibrated>>);
static_assert(levels_v<ste::pact<4>> == level_range{0, 15, 0.0f});
static_assert(learned_bound_v<ste::lsq<4>> && std::is_same_v<grid_t<ste::lsq<4>>, grid::signed_int>);
static_assert(std::is_same_v<grid_t<ste::lsq<4, grid::unsigned_int>>, grid::unsigned_int>);
static_assert(bit_width_v<ste::twn_weight<>> == 2 && std::is_same_v<grid_t<ste::twn_weight<>>, grid::symmetric_odd>);
static_assert(std::is_same_v<grid_t<ste::uniform_weight<3>>, grid::symmetric_odd>);
static_assert(bit_width_v<ste::sign_activation> == 1 && std::is_same_v<bound_t<ste::sign_activation>, fixed_bound_t>);
static_assert(bit_width_v<ste::tanh_clamp<>> == float_bits && !QuantizingPolicy<ste::tanh_clamp<>>);
static_assert(bit_width_v<ste::sat_rescale<ste::dorefa_weight<2>>> == 2);
static_assert(bit_width_v<ste::sat_rescale<ste::tanh_clamp<>>> == float_bits);

// The float policies, and a user's type.
static_assert(bit_width_v<nn::float_weights_t> == float_bits && !QuantizingPolicy<nn::float_weights_t>);
static_assert(PrecisionPolicy<nn::float_activations_t>);
static_assert(bit_width_v<user_binary> == 1 && learned_bound_v<user_binary>);
static_assert(!PrecisionPolicy<silent> && !PrecisionPolicy<ste::any_quantizer> && !PrecisionPolicy<int>);

TEST_CASE("policy_info gives the traits as values")
{
    constexpr policy_info x = policy_info_of<ste::xnor_weight<>>();
    static_assert(x.bits == 1 && x.per_channel && x.bound == bound_kind::data && x.quantizes());
    constexpr policy_info f = policy_info_of<nn::float_weights_t>();
    static_assert(!f.quantizes() && f.bound == bound_kind::none);
    CHECK(policy_info_of<sr1>().stochastic);
    CHECK(policy_info_of<ste::pact<4>>().levels.count() == 16);
    CHECK(describe(user_binary{})->bound == bound_kind::learned);
    CHECK_FALSE(describe(silent{}).has_value());
}

TEST_CASE("ste::any_quantizer reports the traits of the quantizer it holds")
{
    ste::any_quantizer const empty;
    REQUIRE(describe(empty).has_value());
    CHECK(*describe(empty) == policy_info{});  // the identity: float
    ste::any_quantizer const pact = ste::pact<2>({.alpha = 4.0f});
    CHECK(*describe(pact) == policy_info_of<ste::pact<2>>());
    ste::any_quantizer const twn = ste::twn_weight<>{};
    CHECK(describe(twn)->levels == level_range{-1, 1, 0.0f});
    ste::any_quantizer const rescaled = ste::sat_rescale<ste::any_quantizer>(ste::any_quantizer{ste::dorefa_weight<4>{}});
    CHECK(*describe(rescaled) == policy_info_of<ste::dorefa_weight<4>>());  // forwarded from the erased policy
    ste::any_quantizer const unknown = silent{};
    CHECK_FALSE(describe(unknown).has_value());
    // A fake quantizer wider than the packed codes (DoReFa goes to 16 bits) has traits but no grid levels.
    ste::any_quantizer const wide = ste::dorefa_weight<12>{};
    CHECK(describe(wide)->bits == 12);
    CHECK(describe(wide)->levels == level_range{0, 0, 0.0f});
    static_assert(QuantizingPolicy<ste::dorefa_weight<12>> && bit_width_v<ste::dorefa_weight<12>> == 12);
}
