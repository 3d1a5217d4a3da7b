// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief train::stochastic_rounding (SR): the weights exist only as packed codes on a fixed grid, and every
/// update rounds stochastically back onto it:
/// \f[ w_{t+1} = Q_s(w_t - s_t(\nabla f(w_t))) \f]
/// with \f$ Q_s \f$ unbiased stochastic rounding (draws keyed by seed, step, weight and element) and
/// \f$ s_t \f$ the optimizer's step (optimizer state, e.g. Adam moments, stays float). Weight memory is
/// bits/32 of float. Big-batch SR (Li et al., "Big SR-ADAM") is this method with a larger batch and a
/// scaled learning rate: configuration, not another type.
///
/// Li, De, Xu, Studer, Samet, Goldstein, "Training Quantized Nets: A Deeper Understanding", NeurIPS 2017.

#include <lowbit/nn/weight.hpp>
#include <lowbit/random/philox.hpp>
#include <lowbit/train/method_concepts.hpp>

#include <span>
#include <string_view>

namespace lowbit::train {

/// @brief SR training: packed weights, stochastic rounding after each step.
struct stochastic_rounding {
    using weight_state = nn::packed_state;  // only the packed codes of Q(w)
    static constexpr std::string_view name() noexcept { return "sr"; }
    /// w <- Q_s(w - s), stochastic rounding onto the fixed grid (the policy's stochastic_t), draws from @p key.
    template <class Weight>
    static void update(Weight& w, std::span<float const> s, random::counter_key key)
    {
        detail::step_packed(w, s, key);
    }

    template <class Policies>
    static consteval bool check()
    {
        static_assert(detail::all_of<Policies, detail::stochastic_or_float>::value,
                      "lowbit::train::stochastic_rounding needs stochastic weight quantizers (rounding stochastic_t); "
                      "with a deterministic rounding the method is train::rounded (R) -- use train::rounded, or "
                      "make the quantizer stochastic with set_rounding_t<Q, stochastic_t>");
        return true;
    }
};

} // namespace lowbit::train
