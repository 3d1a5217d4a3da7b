// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief ste::uniform_weight<Bits>: uniform symmetric weights on an odd grid with the L2-optimal step (SQWA),
/// with the identity STE.

#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/clipping.hpp>
#include <lowbit/quant/detail/step_kernels.hpp>
#include <lowbit/quant/granularity.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/quant/ste/detail.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

namespace lowbit::ste {

/// @brief Options of ste::uniform_weight.
struct uniform_weight_options {
    int iterations = 30;         ///< Lloyd iterations per start (clip::l2_optimal)
    bool recompute_step = true;  ///< recompute the step on every forward pass; false: keep the first one
    int refine_iterations = 2;   ///< Lloyd iterations per later pass, from the previous step (see forward())
};

/// @brief Uniform symmetric quantizer with an odd number of levels \f$ M = 2^b - 1 \f$ (2 bits: ternary), the
/// weight quantizer of SQWA (Shin, Boo, Sung 2021, "SQWA: Stochastic Quantized Weight Averaging"):
/// \f[ Q(w) = \Delta \operatorname{clip}\!\big(\operatorname{round}(w/\Delta), -\tfrac{M-1}{2}, \tfrac{M-1}{2}\big),
///     \qquad \Delta = \arg\min_\Delta \|W - Q(W;\Delta)\|^2 \f]
/// with round = nearest, ties to even, and Delta from lowbit::clip::l2_optimal (Lloyd iteration), once per
/// slice. Backward: identity STE, \f$ \partial L/\partial w = \partial L/\partial Q \f$, Delta a constant.
/// Whether SQWA recomputes Delta during retraining is not known: `recompute_step` chooses. The first pass fits
/// Delta from two starts (clip::l2_optimal::range); later passes refine the previous Delta with
/// `refine_iterations` Lloyd iterations, which keeps the per-step cost near one pass over the weight.
/// @tparam Bits         2..16 (grid::symmetric_odd)
/// @tparam GranularityT per_tensor_t (default, one Delta per layer) or per_channel_t (call bind(shape) first)
template <int Bits, Granularity GranularityT = per_tensor_t>
class uniform_weight {
    static_assert(detail::check_fake_bits<Bits>());
    static_assert(Bits >= 2, "lowbit::ste::uniform_weight: the odd symmetric grid needs at least 2 bits (2 = ternary); "
                             "for 1 bit use lowbit::ste::xnor_weight or lowbit::ste::dorefa_weight<1>");
    static constexpr level_range levels_{-((1 << (Bits - 1)) - 1), (1 << (Bits - 1)) - 1, 0.0f};

public:
    static constexpr int bits = Bits;
    using granularity_type = GranularityT;
    // policy_traits (lowbit/quant/policy_traits.hpp)
    using grid_type = grid::symmetric_odd;
    using rounding_type = nearest_even_t;
    using bound_type = data_bound_t;  // the L2-optimal step

    uniform_weight() = default;
    explicit uniform_weight(uniform_weight_options o) : opts_(o) {}

    /// Records the tensor's shape (per_channel_t slices along axis 0).
    void bind(std::span<std::size_t const> shape) noexcept { slices_.bind(shape); }

    /// The steps Delta (one per slice) used by the last forward pass.
    std::span<float const> steps() const noexcept { return steps_; }

    /// Computes the L2-optimal step of every slice of x now.
    void calibrate(std::span<float const> x)
    {
        detail::reject_nan(x, "uniform_weight");
        std::size_t const len = slices_.slice_length(x.size(), "uniform_weight");
        steps_.assign(len == 0 ? 0 : x.size() / len, 0.0f);
        clip::l2_optimal const fit{.iterations = opts_.iterations};
        for (std::size_t c = 0; c < steps_.size(); ++c)
            steps_[c] = levels_.step_for_range(fit.range(x.subspan(c * len, len), levels_));
    }

    /// y = Delta clip(round(x/Delta), -qmax, qmax). Throws invalid_input on NaN.
    void forward(std::span<float const> x, std::span<float> y)
    {
        detail::check_forward(x, y, "uniform_weight");
        std::size_t const len = slices_.slice_length(x.size(), "uniform_weight");
        if (len != 0 && steps_.size() * len == x.size() && opts_.recompute_step) {
            // Refit from the previous step: the weights moved by one optimizer step, and Lloyd's fixed point with
            // them, so a couple of passes from there track it (calibrate()'s two full starts cost up to 60
            // passes over the weight, every step, which made SQWA's retraining step 50 % slower than BC's).
            detail::reject_nan(x, "uniform_weight");
            clip::l2_optimal const fit{.iterations = opts_.iterations};
            for (std::size_t c = 0; c < steps_.size(); ++c)
                steps_[c] = levels_.step_for_range(
                    fit.refine(x.subspan(c * len, len), levels_, steps_[c], opts_.refine_iterations));
        } else if (len == 0 || steps_.size() * len != x.size()) {
            calibrate(x);
        }
        constexpr auto qmax = static_cast<float>(levels_.qmax);
        if (len != 0) {
            detail::for_each_slice_run(x.size(), len, [&](std::size_t b, std::size_t e, std::size_t c) {
                float const d = steps_[c];
                auto const out = y.subspan(b, e - b);
                if (d > 0.0f)
                    lowbit::detail::step_quantize(x.subspan(b, e - b), out, d, -qmax, qmax);
                else
                    std::fill(out.begin(), out.end(), 0.0f);
            });
        }
        n_ = x.size();
    }

    /// dx = dy (identity STE).
    void backward(std::span<float const> dy, std::span<float> dx) const
    {
        detail::check_backward(dy, dx, n_, "uniform_weight");
        std::copy(dy.begin(), dy.end(), dx.begin());
    }

private:
    uniform_weight_options opts_{};
    detail::slicing<GranularityT> slices_{};
    std::vector<float> steps_;
    std::size_t n_ = 0;
};

} // namespace lowbit::ste
