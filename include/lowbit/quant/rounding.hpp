// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The built-in rounding modes. Each maps a real value t, already expressed in grid steps, to an
/// integer level. The names of the corresponding Algorithmic C (ac_fixed) modes are given so hardware
/// people can match them. Ties are exact halves (t = k + 1/2) for the nearest modes; see
/// docs/quantizers.md for the full tie table.
///
/// | tag            | rule                                  | ac_fixed      | 2.5 | -2.5 | 1.5 | -0.5 |
/// |----------------|---------------------------------------|---------------|-----|------|-----|------|
/// | nearest_even   | nearest, ties to even                 | AC_RND_CONV   |  2  |  -2  |  2  |  -0  |
/// | nearest_away   | nearest, ties away from zero          | AC_RND_INF    |  3  |  -3  |  2  |  -1  |
/// | toward_zero    | truncate                              | AC_TRN_ZERO   |  2  |  -2  |  1  |  -0  |
/// | floor          | toward -inf                           | AC_TRN        |  2  |  -3  |  1  |  -1  |
/// | ceil           | toward +inf                           | (none)        |  3  |  -2  |  2  |  -0  |
/// | stochastic     | floor + 1 with probability frac(t)    | (none)        | 2/3 | -3/-2| 1/2 | -1/0 |

#include <lowbit/quant/rounding_concepts.hpp>

#include <cmath>
#include <cstdint>

namespace lowbit {

/// @brief Round to nearest, ties to even (IEEE default; ac_fixed AC_RND_CONV).
struct nearest_even_t {
    explicit nearest_even_t() = default;
    static float round(float t) noexcept { return std::nearbyint(t); }
};
/// @brief Round to nearest, ties away from zero (std::round; ac_fixed AC_RND_INF).
struct nearest_away_t {
    explicit nearest_away_t() = default;
    static float round(float t) noexcept
    {
        // trunc + correction rather than std::round so the scalar reference and the SIMD kernel use
        // exactly the same operations (t - trunc(t) is exact).
        float const r = std::trunc(t);
        float const d = t - r;
        return d >= 0.5f ? r + 1.0f : (d <= -0.5f ? r - 1.0f : r);
    }
};
/// @brief Truncate toward zero (ac_fixed AC_TRN_ZERO).
struct toward_zero_t {
    explicit toward_zero_t() = default;
    static float round(float t) noexcept { return std::trunc(t); }
};
/// @brief Round toward minus infinity (two's complement truncation; ac_fixed AC_TRN).
struct floor_t {
    explicit floor_t() = default;
    static float round(float t) noexcept { return std::floor(t); }
};
/// @brief Round toward plus infinity (no ac_fixed equivalent).
struct ceil_t {
    explicit ceil_t() = default;
    static float round(float t) noexcept { return std::ceil(t); }
};
/// @brief Unbiased stochastic rounding: floor(t) + 1 with probability t - floor(t), so E[round(t,u)] = t
/// for u ~ U[0,1). Li et al. 2017, Q_s. The draw u comes from the counter-based generator in
/// random/philox.hpp, keyed by (seed, step, stream, element index).
struct stochastic_t {
    explicit stochastic_t() = default;
    static float round(float t, float u) noexcept
    {
        float const f = std::floor(t);
        return u < t - f ? f + 1.0f : f;
    }
};

inline constexpr nearest_even_t nearest_even{};
inline constexpr nearest_away_t nearest_away{};
inline constexpr toward_zero_t toward_zero{};
inline constexpr floor_t floor_rounding{};
inline constexpr ceil_t ceil_rounding{};
inline constexpr stochastic_t stochastic{};

template <> struct is_rounding_tag<nearest_even_t> : std::true_type {};
template <> struct is_rounding_tag<nearest_away_t> : std::true_type {};
template <> struct is_rounding_tag<toward_zero_t> : std::true_type {};
template <> struct is_rounding_tag<floor_t> : std::true_type {};
template <> struct is_rounding_tag<ceil_t> : std::true_type {};
template <> struct is_rounding_tag<stochastic_t> : std::true_type {};

namespace detail {
// In detail rather than lowbit:: because the enumerators share the names of the tag objects above.

/// @brief The lowered form of a rounding policy, so kernels are not instantiated per tag (mp-units'
/// rounding_mode). `custom` is any user tag: kernels then call its `round` per element.
enum class rounding_mode : std::uint8_t { nearest_even, nearest_away, toward_zero, floor, ceil, stochastic, custom };

/// @brief The rounding_mode of a rounding tag.
template <RoundingPolicy R>
inline constexpr rounding_mode rounding_mode_of_v = rounding_mode::custom;
template <> inline constexpr rounding_mode rounding_mode_of_v<nearest_even_t> = rounding_mode::nearest_even;
template <> inline constexpr rounding_mode rounding_mode_of_v<nearest_away_t> = rounding_mode::nearest_away;
template <> inline constexpr rounding_mode rounding_mode_of_v<toward_zero_t> = rounding_mode::toward_zero;
template <> inline constexpr rounding_mode rounding_mode_of_v<floor_t> = rounding_mode::floor;
template <> inline constexpr rounding_mode rounding_mode_of_v<ceil_t> = rounding_mode::ceil;
template <> inline constexpr rounding_mode rounding_mode_of_v<stochastic_t> = rounding_mode::stochastic;

} // namespace detail

} // namespace lowbit
