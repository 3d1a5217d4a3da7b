// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The PACT alpha-gradient choice and the concepts PactQuantizer and CalibratedPact.

#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>

#include <concepts>
#include <cstdint>

namespace lowbit::ste {

/// @brief How ste::pact computes the gradient of its clipping level alpha (a closed choice, so an enum).
enum class alpha_gradient : std::uint8_t {
    pact,        ///< Choi et al. 2018: dL/dalpha = sum over x >= alpha of dL/dy
    calibrated,  ///< CG-PACT (Jin et al. 2020, SAT): adds the rounding error q_k(x/alpha) - x/alpha for x < alpha
};

namespace detail {
template <class Q>
concept has_alpha_gradient = requires {
    { Q::alpha_gradient_kind } -> std::convertible_to<alpha_gradient>;
};
} // namespace detail

/// @brief A PACT-style quantizer: a learned fake quantizer with a clipping level alpha whose gradient rule is
/// `Q::alpha_gradient_kind`. ste::pact<Bits, G> models it.
template <class Q>
concept PactQuantizer = LearnedFakeQuantizer<Q> && detail::has_alpha_gradient<Q>;

/// @brief A PACT quantizer with CG-PACT's calibrated alpha gradient: `ste::pact<Bits, alpha_gradient::calibrated>`.
/// Asking for the calibration of anything else (`ste::calibrated_t<ste::lsq<4>>`) does not compile.
template <class Q>
concept CalibratedPact = PactQuantizer<Q> && (Q::alpha_gradient_kind == alpha_gradient::calibrated);

} // namespace lowbit::ste
