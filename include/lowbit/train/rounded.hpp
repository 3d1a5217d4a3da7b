// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief train::rounded (R): like stochastic_rounding, but each update rounds deterministically:
/// \f[ w_{t+1} = Q_d(w_t - s_t(\nabla f(w_t))) \f]
/// An update smaller than half a grid step rounds back to the same weight, so R stalls once
/// \f$ |s_t| < \Delta/2 \f$ -- the weakness Li et al. analyse.
///
/// Li, De, Xu, Studer, Samet, Goldstein, "Training Quantized Nets: A Deeper Understanding", NeurIPS 2017.

#include <lowbit/nn/weight.hpp>
#include <lowbit/random/philox.hpp>
#include <lowbit/train/method_concepts.hpp>

#include <span>
#include <string_view>

namespace lowbit::train {

/// @brief R training: packed weights, deterministic rounding after each step.
struct rounded {
    using weight_state = nn::packed_state;  // only the packed codes of Q(w)
    static constexpr std::string_view name() noexcept { return "r"; }
    /// w <- Q_d(w - s), deterministic rounding onto the fixed grid (the policy's rounding).
    template <class Weight>
    static void update(Weight& w, std::span<float const> s, random::counter_key key)
    {
        detail::step_packed(w, s, key);
    }

    template <class Policies>
    static consteval bool check()
    {
        static_assert(detail::all_of<Policies, detail::deterministic_or_float>::value,
                      "lowbit::train::rounded needs deterministic weight quantizers (e.g. nearest_even_t); with "
                      "stochastic_t the method is train::stochastic_rounding (SR) -- use that, or "
                      "set_rounding_t<Q, nearest_even_t>");
        return true;
    }
};

} // namespace lowbit::train
