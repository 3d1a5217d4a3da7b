// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief ste::sat_rescale<Inner>: the weight rescaling of scale-adjusted training (Jin, Yang, Liao, "Neural
/// Network Quantization with Scale-Adjusted Training", BMVC 2020), around any weight fake quantizer Inner
/// (DoReFa's in the paper):
/// \f[ Q^*_{ij} = \frac{Q_{ij}}{\sqrt{n_{out}\,\mathrm{Var}[Q]}} \f]
/// with the unbiased variance over the whole layer, treated as a constant in the backward pass
/// (\f$ \partial L/\partial Q = s\,\partial L/\partial Q^* \f$ with \f$ s \f$ the scale), and
/// \f$ n_{out} \f$ the layer's fan-out: out_features for a dense weight [out, in], out_channels * kh * kw
/// for a conv weight [out, in, kh, kw] (the authors' code and N2D2). SAT applies it to the last dense layer
/// always and to conv layers optionally; used on a float clamp quantizer it is SAT for full-precision models.
///
/// In evaluation the layer folds the scale into its bias instead, as the authors' code does: the weights are
/// used unscaled (forward_unscaled(), integer levels times the inner quantizer's step) and the bias is divided
/// by the scale, y = x Q^T + b / s = (x Q*^T + b) / s. The logits are a positive multiple of the training-mode
/// ones (the same argmax, a softmax temperature of 1/s). nn::weight and nn::dense do this for any policy with
/// `folds_scale_into_bias`.

#include <lowbit/config.hpp>
#include <lowbit/quant/policy_info.hpp>
#include <lowbit/quant/policy_traits.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>

#include <cmath>
#include <cstddef>
#include <functional>
#include <numeric>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace lowbit::ste {

/// @brief SAT's weight rescaling around a weight fake quantizer.
template <FakeQuantizer Inner>
class sat_rescale {
public:
    sat_rescale() = default;
    explicit sat_rescale(Inner inner) : inner_(std::move(inner)) {}

    Inner& inner() noexcept { return inner_; }
    /// The scale 1 / sqrt(n_out Var[Q]) of the last forward pass.
    float scale() const noexcept { return scale_; }
    /// n_out as derived from the bound shape.
    std::size_t fan_out() const noexcept { return fan_out_; }

    void bind(std::span<std::size_t const> shape)
    {
        inner_.bind(shape);
        if (shape.empty()) throw invalid_input("lowbit::ste::sat_rescale: the weight needs a shape");
        // [out, in] -> out; [out, in, kh, kw] -> out * kh * kw.
        fan_out_ = shape[0];
        for (std::size_t i = 2; i < shape.size(); ++i) fan_out_ *= shape[i];
    }

    static constexpr bool folds_scale_into_bias = true;

    /// The inner policy's traits as values, when it knows them only at run time (ste::any_quantizer).
    std::optional<policy_info> info() const
        requires requires(Inner const& i) { i.info(); }
    {
        return inner_.info();
    }

    void forward(std::span<float const> x, std::span<float> y)
    {
        forward_unscaled(x, y);
        for (float& v : y) v *= scale_;
    }

    /// y = Q (not Q*), and scale() = 1 / sqrt(n_out Var[Q]) as forward() computes it: the evaluation form.
    void forward_unscaled(std::span<float const> x, std::span<float> y)
    {
        inner_.forward(x, y);
        std::size_t const n = y.size();
        double mean = 0.0;
        for (float v : y) mean += v;
        mean /= static_cast<double>(n);
        double var = 0.0;
        for (float v : y) var += (v - mean) * (v - mean);
        var = n > 1 ? var / static_cast<double>(n - 1) : 0.0;
        double const denom = std::sqrt(static_cast<double>(fan_out_ == 0 ? n : fan_out_) * var);
        // A constant Q (variance 0) cannot be normalised: it is left as it is.
        scale_ = denom > 0.0 ? static_cast<float>(1.0 / denom) : 1.0f;
    }

    /// dL/dQ = scale * dL/dQ*, then Inner's backward; the scale is a constant (detached).
    void backward(std::span<float const> dy, std::span<float> dx)
    {
        scaled_.resize(dy.size());
        for (std::size_t i = 0; i < dy.size(); ++i) scaled_[i] = dy[i] * scale_;
        inner_.backward(scaled_, dx);
    }

private:
    Inner inner_{};
    float scale_ = 1.0f;
    std::size_t fan_out_ = 0;
    std::vector<float> scaled_;
};

} // namespace lowbit::ste

/// @brief SAT's rescaled policy has its inner policy's traits: the same grid and bound; the rescale multiplies
/// the output (and folds into the layer's bias in evaluation, see folds_scale_into_bias).
template <lowbit::PrecisionPolicy Inner>
struct lowbit::policy_traits<lowbit::ste::sat_rescale<Inner>> : lowbit::policy_traits<Inner> {};
