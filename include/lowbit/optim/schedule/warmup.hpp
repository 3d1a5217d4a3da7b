// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Linear warm-up in front of any schedule (as PyTorch's LinearLR chained with another scheduler).

#include <lowbit/optim/schedule_concepts.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace lowbit::optim::schedule {

/// @brief Multiplies `after` by a factor that rises linearly from `start_factor` at epoch 0 to 1 at
/// `epochs`, and is 1 from then on:
/// \f[
///   \mathrm{lr}(e) = \mathrm{after.rate}(e) \cdot
///     \left( f_0 + (1 - f_0) \min\!\left(1, \frac{\max(e, 0)}{E}\right) \right)
/// \f]
/// with \f$ f_0 \f$ = start_factor > 0, so the first step is never taken at rate exactly 0 (a zero step
/// would leave SR weights unchanged and waste the step). `after` sees the global epoch, not `e - E`: a
/// `warmup<cosine>` anneals over cosine::epochs counted from the start, as in the SAT/AdaBits recipe.
/// `epochs = 0` disables the ramp. When S is a CyclicSchedule, so is warmup<S> (same cycles; the ramp
/// only lowers the rates of the first cycles).
///
/// Clang 14 has no class template argument deduction for aggregates: spell the type,
/// `warmup<cosine>{.epochs = 5, .after = {.lr_max = 0.05f, .epochs = 150}}`.
///
/// @tparam S the schedule after the ramp; must model lowbit::optim::Schedule
template <class S>
struct warmup {
    static_assert(optim::detail::check_schedule<S>());

    double epochs = 1;          ///< length of the ramp, in epochs; finite, >= 0
    float start_factor = 0.01f; ///< factor at epoch 0; finite, in (0, 1]
    S after{};                  ///< the schedule being ramped up

    /// @brief Throws std::invalid_argument unless epochs >= 0 and 0 < start_factor <= 1 (finite); then
    /// calls `after.validate()` when S has one.
    void validate() const
    {
        if (!(std::isfinite(epochs) && epochs >= 0.0))
            throw std::invalid_argument("lowbit::optim::schedule::warmup: epochs is " + std::to_string(epochs) +
                                        "; set a finite .epochs >= 0 (the length of the ramp; 0 disables it)");
        if (!(std::isfinite(start_factor) && start_factor > 0.0f && start_factor <= 1.0f))
            throw std::invalid_argument("lowbit::optim::schedule::warmup: start_factor is " +
                                        std::to_string(start_factor) +
                                        "; set .start_factor in (0, 1] (e.g. 0.01f)");
        if constexpr (requires { after.validate(); })
            after.validate();
    }

    /// @brief The rate at `epoch`. Calls validate() (and through `after.rate` the inner check).
    [[nodiscard]] float rate(double epoch) const
    {
        validate();
        double const f0 = start_factor;
        double const ramp = epochs > 0.0 ? std::min(1.0, std::max(epoch, 0.0) / epochs) : 1.0;
        return static_cast<float>(static_cast<double>(after.rate(epoch)) * (f0 + (1.0 - f0) * ramp));
    }

    /// @brief `after.cycle_epochs()`; only when S is a CyclicSchedule.
    [[nodiscard]] double cycle_epochs() const
        requires CyclicSchedule<S>
    {
        return after.cycle_epochs();
    }

    /// @brief `after.cycle_end(before, after)`; only when S is a CyclicSchedule.
    [[nodiscard]] bool cycle_end(double epoch_before, double epoch_after) const
        requires CyclicSchedule<S>
    {
        return after.cycle_end(epoch_before, epoch_after);
    }
};

} // namespace lowbit::optim::schedule
