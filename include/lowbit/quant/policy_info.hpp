// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief policy_info: policy_traits as run-time values, for a policy chosen at run time (ste::any_quantizer
/// answers `info()`) and for reports (lowbit::summary). `describe(policy)` gives the info of any policy object:
/// its own `info()` when it has one, else its type's traits.
///
/// @code
/// constexpr lowbit::policy_info i = lowbit::policy_info_of<lowbit::ste::pact<4>>();
/// static_assert(i.bits == 4 && i.bound == lowbit::bound_kind::learned && i.levels.count() == 16);
/// @endcode

#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/grid_concepts.hpp>
#include <lowbit/quant/policy_traits.hpp>

#include <concepts>
#include <cstdint>
#include <optional>
#include <type_traits>

namespace lowbit {

/// @brief Where a policy's bound comes from, as a value (the tags of bound.hpp).
enum class bound_kind : std::uint8_t { none, fixed, data, learned };

/// @brief The traits of a policy as values.
struct policy_info {
    int bits = float_bits;              ///< float_bits for a policy that keeps float values
    level_range levels{0, 0, 0.0f};     ///< the grid's levels at `bits` (quantizing policies of 1..8 bits)
    bool per_channel = false;           ///< one step per output channel (else per tensor)
    bool stochastic = false;            ///< stochastic rounding
    bound_kind bound = bound_kind::none;

    constexpr bool quantizes() const noexcept { return bits < float_bits; }
    friend constexpr bool operator==(policy_info const&, policy_info const&) noexcept = default;
};

/// @brief The info of policy type P, from policy_traits<P>.
template <PrecisionPolicy P>
constexpr policy_info policy_info_of() noexcept
{
    using t = policy_traits<P>;
    policy_info i;
    i.bits = t::bits;
    i.per_channel = std::same_as<typename t::granularity_type, per_channel_t>;
    using b = typename t::bound_type;
    i.bound = std::same_as<b, fixed_bound_t>   ? bound_kind::fixed
              : std::same_as<b, data_bound_t>  ? bound_kind::data
              : std::same_as<b, learned_bound_t> ? bound_kind::learned
                                                 : bound_kind::none;
    if constexpr (QuantizingPolicy<P>) {
        if constexpr (t::bits <= max_packed_bits) i.levels = levels_v<P>;
        i.stochastic = stochastic_v<P>;
    }
    return i;
}

/// @brief A policy that knows its traits only at run time: `info()` (ste::any_quantizer, and ste::sat_rescale of
/// one). Deploy and lowbit::summary check such a policy when they meet it, where a PrecisionPolicy is checked
/// at compile time.
template <class P>
concept RuntimeDescribedPolicy = requires(P const& p) {
    { p.info() } -> std::convertible_to<std::optional<policy_info>>;
};

/// @brief The info of a policy object: `p.info()` for one that knows it only at run time (ste::any_quantizer;
/// empty when it holds a quantizer that states no traits), else policy_info_of<P>(), else empty.
template <class P>
std::optional<policy_info> describe(P const& p)
{
    if constexpr (RuntimeDescribedPolicy<P>)
        return p.info();
    else if constexpr (PrecisionPolicy<P>)
        return policy_info_of<P>();
    else
        return std::nullopt;
}

} // namespace lowbit
