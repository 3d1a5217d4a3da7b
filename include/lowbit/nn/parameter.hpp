// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief A view of one trainable float tensor that is not a layer weight (biases, BatchNorm, learned
/// clipping bounds). Layer weights are `nn::weight<Policy>` objects, visited separately, because the
/// training method decides how they are stored and updated.

#include <cstdint>
#include <span>
#include <string_view>

namespace lowbit::nn {

/// @brief What a non-weight parameter is.
enum class parameter_kind : std::uint8_t {
    bias,      ///< a layer bias
    norm,      ///< BatchNorm scale or shift
    clipping,  ///< a learned clipping bound (PACT alpha, LSQ step)
};

/// @brief A float parameter and its gradient. None of these get weight decay (AdaBits / PACT practice).
struct parameter {
    std::string_view name;
    std::span<float> value;
    std::span<float> grad;
    parameter_kind kind = parameter_kind::bias;
};

} // namespace lowbit::nn
