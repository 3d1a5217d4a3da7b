// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The SWA-style cyclic learning rate (Izmailov et al. 2018) used by SQWA (methods.md §3.2): within
/// each cycle the rate decays linearly from `high` to `low`, then jumps back to `high`.

#include <lowbit/optim/schedule_concepts.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace lowbit::optim::schedule {

/// @brief Cyclic schedule: with cycle length \f$ C \f$ (epochs_per_cycle) and the position in the current
/// cycle \f$ c(e) \in (0, 1] \f$,
/// \f[
///   c(e) = \frac{e}{C} - \left\lceil \frac{e}{C} \right\rceil + 1 \quad (e > 0), \qquad c(0) = 0, \qquad
///   \mathrm{lr}(e) = (1 - c)\,\mathrm{high} + c\,\mathrm{low} .
/// \f]
/// Cycles are the half-open intervals \f$ (kC, (k+1)C] \f$: the rate reaches exactly `low` at the end of a
/// cycle, \f$ e = (k+1)C \f$, and `cycle_end(before, after)` is true for the step whose interval
/// (before, after] holds that boundary. Fed with the progress after each step, \f$ e = i/N \f$ for the
/// 1-based iteration i and N steps per epoch, this is SWA's
/// \f$ t(i) = ((i-1) \bmod c + 1)/c,\ \alpha(i) = (1-t(i))\alpha_1 + t(i)\alpha_2 \f$ with
/// \f$ c = CN \f$ iterations: the capture step runs at \f$ \alpha_2 \f$ = low. (A plain
/// `fmod(e, C) / C` would differ only at the boundaries, giving `high` there, so no step would run at low.)
/// Ratios \f$ e/C \f$ within a relative 1e-9 of an integer count as that integer, so 0.3 epochs with
/// C = 0.1 ends the third cycle despite rounding. Epochs before 0 are treated as 0.
///
/// SQWA defaults suggested in methods.md §3.3 (not from the paper):
/// `cyclic{.high = 1e-2f, .low = 1e-4f, .epochs_per_cycle = 1}`.
///
/// @note The cycle length is the field `epochs_per_cycle`; the member function `cycle_epochs()` required by
/// CyclicSchedule returns it (a member cannot be both a field and a function of the same name).
///
/// Izmailov, P., Podoprikhin, D., Garipov, T., Vetrov, D. and Wilson, A. G. (2018). Averaging Weights Leads
/// to Wider Optima and Better Generalization. UAI.
struct cyclic {
    float high = 0.01f;         ///< rate at the start of each cycle (alpha_1); finite, >= low
    float low = 1e-4f;          ///< rate at the end of each cycle (alpha_2); finite, > 0
    double epochs_per_cycle = 1; ///< cycle length C in epochs; finite, > 0

    /// @brief Throws std::invalid_argument unless high >= low > 0 (finite) and epochs_per_cycle > 0 (finite).
    void validate() const
    {
        if (!(std::isfinite(high) && std::isfinite(low) && high >= low && low > 0.0f))
            throw std::invalid_argument("lowbit::optim::schedule::cyclic: high is " + std::to_string(high) +
                                        " and low " + std::to_string(low) +
                                        "; set finite rates with .high >= .low > 0 (e.g. 1e-2f and 1e-4f)");
        if (!(std::isfinite(epochs_per_cycle) && epochs_per_cycle > 0.0))
            throw std::invalid_argument("lowbit::optim::schedule::cyclic: epochs_per_cycle is " +
                                        std::to_string(epochs_per_cycle) +
                                        "; set a finite .epochs_per_cycle > 0 (e.g. 1)");
    }

    /// @brief The rate at `epoch`. Calls validate() (a few comparisons).
    [[nodiscard]] float rate(double epoch) const
    {
        validate();
        double const q = position(epoch);
        double const c = q <= 0.0 ? 0.0 : q - std::ceil(q) + 1.0;
        return static_cast<float>((1.0 - c) * static_cast<double>(high) + c * static_cast<double>(low));
    }

    /// @brief The cycle length in epochs (CyclicSchedule).
    [[nodiscard]] double cycle_epochs() const noexcept { return epochs_per_cycle; }

    /// @brief Number of cycles completed at `epoch`: floor(epoch / C), 0 for epoch <= 0.
    [[nodiscard]] std::int64_t cycles_completed(double epoch) const
    {
        validate();
        double const q = position(epoch);
        return q <= 0.0 ? 0 : static_cast<std::int64_t>(std::floor(q));
    }

    /// @brief True when a cycle ends in (before, after], i.e. some k >= 1 has before < kC <= after
    /// (CyclicSchedule). With before = step / N and after = (step + 1) / N it fires for the last step of
    /// each cycle: capture the model after that step.
    [[nodiscard]] bool cycle_end(double epoch_before, double epoch_after) const
    {
        return cycles_completed(epoch_after) > cycles_completed(epoch_before);
    }

private:
    // max(epoch, 0) / C, snapped to the nearest integer when within a relative 1e-9.
    [[nodiscard]] double position(double epoch) const noexcept
    {
        double const q = std::max(epoch, 0.0) / epochs_per_cycle;
        double const r = std::round(q);
        return std::abs(q - r) <= 1e-9 * std::max(1.0, std::abs(q)) ? r : q;
    }
};

} // namespace lowbit::optim::schedule
