// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Concept for quantization grids: the set of levels a code can stand for.

#include <concepts>

namespace lowbit {

/// @brief The integer levels of a grid at one bit width. Level k stands for the real value
/// `(k + offset) * step`; codes store `k - qmin` in `Bits` bits.
struct level_range {
    int qmin;      ///< lowest level index
    int qmax;      ///< highest level index
    float offset;  ///< 0 for mid-tread grids (0 is a level), 1/2 for mid-rise grids (levels at half steps)

    /// Number of levels, `qmax - qmin + 1`.
    constexpr int count() const noexcept { return qmax - qmin + 1; }
    /// The step that puts the outermost positive level exactly at the clipping bound `a`.
    constexpr float step_for_range(float a) const noexcept { return a / (static_cast<float>(qmax) + offset); }
    friend constexpr bool operator==(level_range const&, level_range const&) noexcept = default;
};

/// @brief A grid: a type with `levels<Bits>()` returning the level_range for that bit width. Grids that
/// cannot exist at some width (symmetric_odd at 1 bit) reject it there with a static_assert that says
/// which grid to use instead.
template <class G>
concept Grid = requires {
    { G::template levels<2>() } -> std::same_as<level_range>;
};

} // namespace lowbit
