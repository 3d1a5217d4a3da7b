// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The lowered form of a quantizer that kernels take: a handful of numbers and a rounding mode, so
/// kernels are instantiated per rounding mode and architecture, not per quantizer type.
///
/// Quantize: t = clamp((x - shift) * inv_step, lo, hi) (NaN -> 0), k = round(t), code = (k - qmin) & mask.
/// Dequantize: x = (float(code + qmin) + offset) * step.
/// Both are written so no multiply is followed by an add (shift is subtracted before the multiply, offset
/// added before it): no FMA contraction can make the SIMD kernels and the scalar reference differ.

#include <lowbit/quant/grid_concepts.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/random/philox.hpp>

#include <cmath>
#include <cstdint>

namespace lowbit::kernels {

/// @brief Everything a quantize kernel needs for one slice (a tensor or one channel).
struct quantize_params {
    float shift = 0.0f;     ///< offset * step: mid-rise grids shift by half a step
    float inv_step = 1.0f;  ///< 1 / step, or 0 for a zero step (all values then map to level 0)
    float lo = 0.0f;        ///< clamp bounds in steps: [qmin, qmax] when saturating, +-2^23 when wrapping
    float hi = 0.0f;
    int qmin = 0;                 ///< lowest level; code = level - qmin
    std::uint32_t code_mask = 0;  ///< 2^bits - 1
    random::counter_key key{};    ///< draws for stochastic rounding
};

/// @brief Everything a dequantize kernel needs for one slice.
struct dequantize_params {
    float step = 1.0f;
    float offset = 0.0f;
    int qmin = 0;
};

/// @brief Lowers (levels, bits, step, overflow) to quantize_params.
inline quantize_params make_quantize_params(level_range const& l, int bits, float step, bool wrap,
                                            random::counter_key key = {}) noexcept
{
    quantize_params p;
    p.inv_step = (step > 0.0f && std::isfinite(step)) ? 1.0f / step : 0.0f;
    p.shift = p.inv_step == 0.0f ? 0.0f : l.offset * step;
    p.lo = wrap ? -0x1p23f : static_cast<float>(l.qmin);
    p.hi = wrap ? 0x1p23f : static_cast<float>(l.qmax);
    p.qmin = l.qmin;
    p.code_mask = (1u << bits) - 1u;
    p.key = key;
    return p;
}

/// @brief Lowers (levels, step) to dequantize_params.
inline dequantize_params make_dequantize_params(level_range const& l, float step) noexcept
{
    return {step, l.offset, l.qmin};
}

/// @brief Bytes of a bitstream of n codes of `bits` bits: ceil(n * bits / 8).
constexpr std::size_t packed_bytes(std::size_t n, int bits) noexcept
{
    return (n * static_cast<std::size_t>(bits) + 7) / 8;
}

} // namespace lowbit::kernels
