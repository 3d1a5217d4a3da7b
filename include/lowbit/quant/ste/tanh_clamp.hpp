// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief ste::tanh_clamp: DoReFa's weight clamping without the quantization, for scale-adjusted training of
/// full-precision models (Jin, Yang, Liao 2020, "SAT": clamp, then rescale with ste::sat_rescale).

#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/granularity.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/policy_traits.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/quant/ste/detail.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

namespace lowbit::ste {

/// @brief The float clamp of DoReFa / SAT, per slice (the tensor, or one output channel):
/// \f[ \hat W = 2\tilde W - 1 = \frac{\tanh W}{\max|\tanh W|} \in [-1, 1] \f]
/// Backward: \f$ \partial L/\partial W = \partial L/\partial \hat W\,(1 - \tanh^2 W)/\max|\tanh W| \f$, the max
/// a constant, as ste::dorefa_weight. An all-zero slice stays zero and passes the gradient unchanged.
///
/// @code
/// lowbit::ste::sat_rescale<lowbit::ste::tanh_clamp<>> fp_sat;   // SAT for a float last layer
/// @endcode
template <Granularity GranularityT = per_tensor_t>
class tanh_clamp {
public:
    using granularity_type = GranularityT;
    // policy_traits (lowbit/quant/policy_traits.hpp)
    static constexpr int bits = float_bits;  // clamps, does not quantize
    using grid_type = void;
    using rounding_type = void;
    using bound_type = no_bound_t;

    void bind(std::span<std::size_t const> shape) noexcept { slices_.bind(shape); }

    /// y = tanh(x) / max|tanh x| per slice. Throws invalid_input on NaN.
    void forward(std::span<float const> x, std::span<float> y)
    {
        detail::check_forward(x, y, "tanh_clamp");
        std::size_t const len = slices_.slice_length(x.size(), "tanh_clamp");
        n_ = x.size();
        deriv_.resize(x.size());
        if (len == 0) return;
        detail::tanh_and_max(x, len, deriv_, max_);  // deriv_ = tanh(x) for now
        detail::for_each_slice_run(x.size(), len, [&](std::size_t b, std::size_t e, std::size_t c) {
            float const inv = max_[c] > 0.0f ? 1.0f / max_[c] : 0.0f;
            for (std::size_t i = b; i < e; ++i) {
                float const t = deriv_[i];
                y[i] = inv > 0.0f ? t * inv : 0.0f;
                deriv_[i] = inv > 0.0f ? (1.0f - t * t) * inv : 1.0f;
            }
        });
    }

    void backward(std::span<float const> dy, std::span<float> dx) const
    {
        detail::check_backward(dy, dx, n_, "tanh_clamp");
        for (std::size_t i = 0; i < n_; ++i) dx[i] = dy[i] * deriv_[i];
    }

private:
    detail::slicing<GranularityT> slices_{};
    std::vector<float> deriv_;
    std::vector<float> max_;  // max|tanh| per slice (0 for an all-zero slice)
    std::size_t n_ = 0;
};

} // namespace lowbit::ste
