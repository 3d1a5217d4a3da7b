// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief What happens to values beyond the clipping bound. lowbit saturates by default; wrap-around
/// (two's-complement overflow, as unguarded integer hardware does) is an explicit opt-in for emulation.

#include <type_traits>

namespace lowbit {

/// @brief Values beyond the bound take the outermost level (the default). +-Inf saturate too.
struct saturate_t { explicit saturate_t() = default; };
/// @brief Integer levels outside the grid wrap modulo 2^b. Values with |x/step| >= 2^23 and +-Inf first
/// saturate at +-2^23 steps, since beyond that the float has no integer resolution.
struct wrap_t { explicit wrap_t() = default; };

inline constexpr saturate_t saturate{};
inline constexpr wrap_t wrap{};

/// @brief An overflow tag.
template <class T>
concept OverflowPolicy = std::is_same_v<T, saturate_t> || std::is_same_v<T, wrap_t>;

} // namespace lowbit
