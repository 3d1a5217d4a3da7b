// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief train::binary_connect (BC): float shadow weights \f$ w_r \f$; the forward pass uses
/// \f$ w_b = Q(w_r) \f$, the gradient is taken at \f$ w_b \f$ and applied to \f$ w_r \f$ unchanged
/// (straight-through estimator), and the shadow weights are clipped to the quantizer's range:
/// \f[ w_r \leftarrow \mathrm{clip}(w_r - s_t(\nabla f(Q(w_r)))) \f]
/// Q may round deterministically or stochastically; stochastic BC evaluates with the real-valued weights, as
/// the original does. With any bit width this is plain quantization-aware training with shadow weights.
///
/// Courbariaux, Bengio, David, "BinaryConnect: Training Deep Neural Networks with binary weights during
/// propagations", NeurIPS 2015. Li, De, Xu, Studer, Samet, Goldstein, "Training Quantized Nets: A Deeper
/// Understanding", NeurIPS 2017 (BC-ADAM).

#include <lowbit/nn/weight.hpp>
#include <lowbit/random/philox.hpp>

#include <span>
#include <string_view>

namespace lowbit::train {

/// @brief BinaryConnect / shadow-weight quantization-aware training.
struct binary_connect {
    using weight_state = nn::shadow_state;  // float shadow weights w_r and Q(w_r)
    static constexpr std::string_view name() noexcept { return "bc"; }
    /// w_r <- clip(w_r - s): the shadow weights take the step unchanged (straight-through estimator), then are
    /// clipped to the quantizer's range (a fixed_range clipping; the ste:: fake quantizers are not clipped).
    template <class Weight>
    static void update(Weight& w, std::span<float const> s, random::counter_key)
    {
        w.subtract(s);
        project(w);
    }
    /// The clip of the rule above (train::SubtractingMethod).
    template <class Weight>
    static void project(Weight& w)
    {
        w.clip_to_range();
    }
    template <class Policies>
    static consteval bool check() { return true; }
};

} // namespace lowbit::train
