// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Cosine annealing without restarts (Loshchilov & Hutter 2017, SGDR, one period).

#include <lowbit/optim/schedule_concepts.hpp>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace lowbit::optim::schedule {

/// @brief Anneals from lr_max to lr_min over `epochs`, then stays at lr_min:
/// \f[
///   \mathrm{lr}(e) = \mathrm{lr}_{min} + (\mathrm{lr}_{max} - \mathrm{lr}_{min})
///                    \frac{1 + \cos(\pi \min(e, E) / E)}{2}
/// \f]
/// With fractional epochs this is the per-iteration cosine of the SAT/AdaBits recipe (methods.md §2.6):
/// `cosine{.lr_max = 0.05f, .epochs = 150}`; combine with warmup<cosine> for a linear warm-up.
/// Epochs before 0 are treated as 0.
///
/// Loshchilov, I. and Hutter, F. (2017). SGDR: Stochastic Gradient Descent with Warm Restarts. ICLR.
struct cosine {
    float lr_max = 0.01f; ///< rate at epoch 0; finite, >= lr_min
    float lr_min = 0.0f;  ///< rate from `epochs` on; finite, >= 0
    double epochs = 1;    ///< length of the annealing, in epochs; finite, > 0

    /// @brief Throws std::invalid_argument unless 0 <= lr_min <= lr_max (finite) and epochs > 0 (finite).
    void validate() const
    {
        if (!(std::isfinite(lr_min) && std::isfinite(lr_max) && 0.0f <= lr_min && lr_min <= lr_max))
            throw std::invalid_argument("lowbit::optim::schedule::cosine: lr_max is " + std::to_string(lr_max) +
                                        " and lr_min " + std::to_string(lr_min) +
                                        "; set finite rates with 0 <= .lr_min <= .lr_max");
        if (!(std::isfinite(epochs) && epochs > 0.0))
            throw std::invalid_argument("lowbit::optim::schedule::cosine: epochs is " + std::to_string(epochs) +
                                        "; set a finite .epochs > 0 (the length of the annealing)");
    }

    /// @brief The rate at `epoch`. Calls validate() (a few comparisons).
    [[nodiscard]] float rate(double epoch) const
    {
        validate();
        double const e = std::clamp(epoch, 0.0, epochs);
        double const lo = lr_min;
        double const hi = lr_max;
        return static_cast<float>(lo + (hi - lo) * (1.0 + std::cos(std::numbers::pi * e / epochs)) / 2.0);
    }
};

} // namespace lowbit::optim::schedule
