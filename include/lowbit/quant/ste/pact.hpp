// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief ste::pact<Bits, alpha_gradient>: PACT activation quantization with a learned clipping level, and its
/// calibrated-gradient variant CG-PACT.

#include <lowbit/config.hpp>
#include <lowbit/parallel/ordered_reduce.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/detail/step_kernels.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/quant/ste/detail.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>
#include <lowbit/quant/ste/pact_concepts.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::ste {

/// @brief Options of ste::pact.
struct pact_options {
    float alpha = 10.0f;  ///< initial clipping level (PACT: 10; the SAT code uses 8 for conv inputs, 10 for FC)
};

/// @brief PACT (Choi et al. 2018, "PACT: Parameterized Clipping Activation for Quantized Neural Networks") and
/// CG-PACT (Jin, Yang, Liao 2020, "Neural Network Quantization with Scale-Adjusted Training"). One learned
/// scalar alpha per tensor; |alpha| is used, so the sign of alpha never matters. With \f$ n = 2^k - 1 \f$,
/// \f$ a = |\alpha| \f$ and \f$ \tilde x = \operatorname{clip}(x, 0, a) \f$:
/// \f[ y = \frac{a}{n}\operatorname{round}\!\Big(\frac{n\,\tilde x}{a}\Big) = a\,q_k(\tilde x / a) \f]
/// (round = nearest, ties to even). Backward, STE on the rounding, boundary convention \f$ 0 \le x < a \f$
/// (so x = a sends its gradient to alpha, not to x, and every element feeds exactly one of the two):
/// \f[ \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}\,\mathbb 1\{0 \le x < a\} \f]
/// \f[ \text{PACT: } \frac{\partial L}{\partial \alpha} \mathrel{+}= \operatorname{sign}(\alpha)
///     \sum_{x \ge a} \frac{\partial L}{\partial y} \qquad
///     \text{CG-PACT: } \frac{\partial L}{\partial \alpha} \mathrel{+}= \operatorname{sign}(\alpha)
///     \Big(\sum_{x \ge a} \frac{\partial L}{\partial y} + \sum_{x < a} \frac{\partial L}{\partial y}
///     \big(q_k(\tilde x/a) - \tilde x/a\big)\Big) \f]
/// CG-PACT's extra term is the exact derivative of \f$ a\,q_k(\tilde x/a) \f$ with the STE only on the rounding
/// (it is 0 for x <= 0). Alpha should get no weight decay (nn::parameter_kind::clipping).
///
/// @code
/// lowbit::ste::pact<4> q{{.alpha = 8.0f}};
/// lowbit::ste::pact<4, lowbit::ste::alpha_gradient::calibrated> cg;   // CG-PACT, alpha = 10
/// @endcode
/// @tparam Bits 1..16
/// @tparam Rule alpha_gradient::pact (default) or alpha_gradient::calibrated (CG-PACT)
template <int Bits, alpha_gradient Rule = alpha_gradient::pact>
class pact {
    static_assert(detail::check_fake_bits<Bits>());

public:
    static constexpr int bits = Bits;
    static constexpr alpha_gradient alpha_gradient_kind = Rule;
    // policy_traits (lowbit/quant/policy_traits.hpp)
    using grid_type = grid::unsigned_int;
    using rounding_type = nearest_even_t;
    using granularity_type = per_tensor_t;
    using bound_type = learned_bound_t;  // alpha
    static constexpr std::string_view parameter_name = "pact.alpha";

    pact() = default;
    explicit pact(pact_options o) : alpha_(o.alpha) {}

    /// Per tensor: the shape is not needed.
    void bind(std::span<std::size_t const>) noexcept {}

    /// The learned alpha (one value) and its accumulated gradient.
    std::span<float> parameters() noexcept { return {&alpha_, 1}; }
    std::span<float> gradients() noexcept { return {&grad_, 1}; }
    float alpha() const noexcept { return alpha_; }

    /// y = a q_k(clip(x, 0, a)/a). Throws invalid_input on NaN input or a zero / non-finite alpha.
    void forward(std::span<float const> x, std::span<float> y)
    {
        detail::check_forward(x, y, "pact");
        float const a = std::abs(alpha_);
        if (!(a > 0.0f) || !std::isfinite(a))
            throw invalid_input("lowbit::ste::pact: alpha must be finite and non-zero, got " + std::to_string(alpha_));
        constexpr float n = detail::steps_v<Bits>;
        x_.assign(x.begin(), x.end());
        a_ = a;
        parallel_for(x.size(), std::size_t{1} << 15, [&](std::size_t b, std::size_t e) {
            lowbit::detail::pact_quantize(x.subspan(b, e - b), y.subspan(b, e - b), a, n);
        });
    }

    /// dx = dy 1{0 <= x < a}; accumulates the PACT or CG-PACT alpha gradient.
    void backward(std::span<float const> dy, std::span<float> dx)
    {
        detail::check_backward(dy, dx, x_.size(), "pact");
        constexpr float n = detail::steps_v<Bits>;
        double const g = ordered_block_reduce<double>(x_.size(), [&](std::size_t b, std::size_t e) {
            return lowbit::detail::pact_backward<Rule == alpha_gradient::calibrated>(
                std::span<float const>(x_).subspan(b, e - b), dy.subspan(b, e - b), dx.subspan(b, e - b), a_, n);
        });
        grad_ += (alpha_ < 0.0f ? -1.0f : 1.0f) * static_cast<float>(g);
    }

private:
    float alpha_ = pact_options{}.alpha;
    float grad_ = 0.0f;
    float a_ = 0.0f;           // |alpha| of the last forward pass
    std::vector<float> x_;     // inputs of the last forward pass
};

namespace detail {
template <class Q>
struct calibrated {
    static_assert(CalibratedPact<Q>, "lowbit::ste: CG-PACT's calibrated alpha gradient exists only for PACT; use "
                                     "lowbit::ste::pact<Bits, lowbit::ste::alpha_gradient::calibrated>");
    using type = Q;
};
template <int Bits, alpha_gradient Rule>
struct calibrated<pact<Bits, Rule>> {
    using type = pact<Bits, alpha_gradient::calibrated>;
};
} // namespace detail

/// @brief The CG-PACT version of a PACT quantizer: `calibrated_t<pact<4>>` is
/// `pact<4, alpha_gradient::calibrated>`; a type that already models CalibratedPact is kept. For any other
/// quantizer it is a compile error that says what to use.
template <class Q>
using calibrated_t = typename detail::calibrated<Q>::type;

} // namespace lowbit::ste
