// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief train::full_precision: ordinary float training; weight quantizers are ignored.
/// Update: \f$ w_{t+1} = w_t - s_t \f$, with \f$ s_t \f$ the optimizer's step.

#include <lowbit/nn/weight.hpp>
#include <lowbit/random/philox.hpp>

#include <span>
#include <string_view>

namespace lowbit::train {

/// @brief Float training (the FP baseline of Li et al. 2017, Table 1).
struct full_precision {
    using weight_state = nn::float_state;
    static constexpr std::string_view name() noexcept { return "fp"; }
    /// w <- w - s (a quantizing policy's weight is kept in float too and never quantized).
    template <class Weight>
    static void update(Weight& w, std::span<float const> s, random::counter_key)
    {
        w.subtract(s);
    }
    /// No projection after the subtraction (train::SubtractingMethod).
    template <class Weight>
    static void project(Weight&)
    {
    }
    template <class Policies>
    static consteval bool check() { return true; }
};

} // namespace lowbit::train
