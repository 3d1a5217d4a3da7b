// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Multi-step decay (PyTorch's MultiStepLR): the rate is multiplied by gamma at each milestone.

#include <lowbit/optim/schedule_concepts.hpp>

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace lowbit::optim::schedule {

/// @brief \f$ \mathrm{lr} \cdot \gamma^{k} \f$ with \f$ k \f$ = the number of milestones \f$ \le \f$ epoch.
/// The CIFAR-10 ResNet-20 recipe of methods.md §2.6 is
/// `step_decay{.lr = 0.1f, .gamma = 0.1f, .milestones = {100, 150}}`. Milestones need not be sorted; a
/// repeated milestone counts twice.
struct step_decay {
    float lr = 0.01f;                 ///< rate before the first milestone; finite, >= 0
    float gamma = 0.1f;               ///< factor applied at each milestone; finite, >= 0
    std::vector<double> milestones{}; ///< epochs at which the rate drops (the drop holds from that epoch on)

    /// @brief Throws std::invalid_argument unless lr and gamma are finite and >= 0 and no milestone is NaN.
    void validate() const
    {
        if (!(std::isfinite(lr) && lr >= 0.0f))
            throw std::invalid_argument("lowbit::optim::schedule::step_decay: lr is " + std::to_string(lr) +
                                        "; set a finite .lr >= 0");
        if (!(std::isfinite(gamma) && gamma >= 0.0f))
            throw std::invalid_argument("lowbit::optim::schedule::step_decay: gamma is " + std::to_string(gamma) +
                                        "; set a finite .gamma >= 0 (typically 0.1f)");
        for (double const m : milestones)
            if (std::isnan(m))
                throw std::invalid_argument("lowbit::optim::schedule::step_decay: a milestone is NaN; "
                                            "milestones are epochs, e.g. {100, 150}");
    }

    /// @brief The rate at `epoch`. Calls validate() (one comparison per milestone).
    [[nodiscard]] float rate(double epoch) const
    {
        validate();
        double r = lr;
        for (double const m : milestones)
            if (m <= epoch)
                r *= static_cast<double>(gamma);
        return static_cast<float>(r);
    }
};

} // namespace lowbit::optim::schedule
