// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief A constant learning rate.

#include <lowbit/optim/schedule_concepts.hpp>

#include <cmath>
#include <stdexcept>
#include <string>

namespace lowbit::optim::schedule {

/// @brief The same rate at every epoch: `constant{.lr = 1e-4f}` (e.g. SQWA's fine-tuning phase).
struct constant {
    float lr = 0.01f; ///< the rate; finite, >= 0

    /// @brief Throws std::invalid_argument unless lr is finite and >= 0.
    void validate() const
    {
        if (!(std::isfinite(lr) && lr >= 0.0f))
            throw std::invalid_argument("lowbit::optim::schedule::constant: lr is " + std::to_string(lr) +
                                        "; set a finite .lr >= 0");
    }

    /// @brief `lr` at every epoch. Calls validate() (two comparisons).
    [[nodiscard]] float rate(double /*epoch*/) const
    {
        validate();
        return lr;
    }
};

} // namespace lowbit::optim::schedule
