// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The output transforms of the integer GEMMs (binary_gemm, bitserial_gemm, int8_gemm,
/// binary_int8_gemm, binary_conv2d), fused into the kernels' tile stores so that the int32 result of a
/// tile is transformed while it is still in registers. Each is an aggregate passed as the output argument:
///
/// | aggregate      | element (i, j) of the integer result v                                         |
/// |----------------|--------------------------------------------------------------------------------|
/// | int32_output   | `data[i * ld + j] = v`                                                         |
/// | float_output   | `data[i * ld + j] = std::fma(float(v), scale[j], bias[j])` (scale 1, bias 0 if null) |
/// | sign_output    | bit j of row i = `(v >= threshold[j]) != flip bit j`, rows of `ld` 64-bit words |
///
/// float_output is the per-output-channel dequantization (scale = step of the weights times that of the
/// activations) with the bias or a folded BatchNorm. sign_output is BatchNorm followed by sign(), folded
/// into one integer comparison per channel (see batch_norm_sign_thresholds), and packs the signs into
/// bit rows for the next binary layer: bit 1 means +1, as in lowbit's 1-bit binary grid. The bits of a
/// row past its n columns (up to the end of its last word) are written as 0, which is what the next
/// binary_gemm needs from its padding; words past ceil(n / 64) are not touched.
///
/// The float transform uses one explicit fused multiply-add (std::fma in the scalar path and the
/// references, vfmadd in the vector paths): with a separate multiply and add, `-ffp-contract` would decide
/// whether the compiler fuses them, and the paths could differ in the last bit.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <concepts>
#include <cstdint>
#include <limits>

namespace lowbit::kernels {

/// @brief Raw int32 results: `data[i * ld + j]`.
struct int32_output {
    std::int32_t* data = nullptr;
    std::size_t ld = 0;  ///< elements between rows (>= n)
};

/// @brief Float results `fma(float(v), scale[j], bias[j])`: per-column (output-channel) scale and bias.
struct float_output {
    float* data = nullptr;
    std::size_t ld = 0;            ///< elements between rows (>= n)
    float const* scale = nullptr;  ///< n scales; null means 1
    float const* bias = nullptr;   ///< n biases; null means 0
};

/// @brief Binarized, bit-packed results: bit j % 64 of word `data[i * ld + j / 64]` is 1 (+1) when
/// `v >= threshold[j]`, inverted where bit j of `flip` is set (a BatchNorm with negative gamma).
struct sign_output {
    std::uint64_t* data = nullptr;
    std::size_t ld = 0;                       ///< 64-bit words between rows (>= ceil(n / 64))
    std::int32_t const* threshold = nullptr;  ///< n thresholds (required)
    std::uint64_t const* flip = nullptr;      ///< ceil(n / 64) words of flip bits; null means none
};

/// @brief Satisfied by the output transforms of the integer GEMMs: int32_output, float_output, sign_output.
template <class Output>
concept IntGemmOutput = std::same_as<Output, int32_output> || std::same_as<Output, float_output> ||
                        std::same_as<Output, sign_output>;

/// @brief Folds BatchNorm + sign into the integer thresholds of sign_output, for channels 0 .. n-1:
/// y = gamma * (v - mean) / sqrt(var + eps) + beta, and the sign bit is 1 when y >= 0 (sign(0) = +1, as
/// lowbit's binary grid rounds 0 to +a). For integer v this is v >= ceil(t) when gamma > 0, and
/// !(v >= floor(t) + 1) when gamma < 0, with t = mean - beta * sqrt(var + eps) / gamma; gamma == 0 gives a
/// constant sign(beta). `flip` receives ceil(n / 64) words. The thresholds are computed in double, so they
/// can differ from a float BatchNorm evaluated on the same v only where y rounds to 0 in float.
inline void batch_norm_sign_thresholds(std::size_t n, float const* mean, float const* var, float const* gamma,
                                       float const* beta, float eps, std::int32_t* threshold,
                                       std::uint64_t* flip) noexcept
{
    constexpr double lo = std::numeric_limits<std::int32_t>::min();
    constexpr double hi = std::numeric_limits<std::int32_t>::max();
    std::fill(flip, flip + (n + 63) / 64, std::uint64_t{0});
    for (std::size_t j = 0; j < n; ++j) {
        double const s = std::sqrt(static_cast<double>(var[j]) + static_cast<double>(eps));
        double t = 0.0;
        bool inverted = false;
        if (gamma[j] == 0.0f) {
            t = lo;  // every v passes; the sign is that of beta
            inverted = beta[j] < 0.0f;
        } else {
            double const tau = static_cast<double>(mean[j]) - static_cast<double>(beta[j]) * s / gamma[j];
            inverted = gamma[j] < 0.0f;
            t = inverted ? std::floor(tau) + 1.0 : std::ceil(tau);
        }
        if (std::isnan(t)) t = hi;  // NaN statistics: no v passes
        threshold[j] = static_cast<std::int32_t>(std::clamp(t, lo, hi));
        if (inverted) flip[j / 64] |= std::uint64_t{1} << (j % 64);
    }
}

} // namespace lowbit::kernels
