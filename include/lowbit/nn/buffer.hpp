// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief A view of one float tensor of a layer's state that is not trained by the optimizer but is part of
/// the model (BatchNorm's running mean and variance): saved in checkpoints, never given a gradient.

#include <span>
#include <string_view>

namespace lowbit::nn {

/// @brief A named state tensor of a layer. Layers that have some provide `for_each_buffer(f)`, calling
/// f(buffer&) for each; layers without state need not declare the function (containers skip them).
struct buffer {
    std::string_view name;
    std::span<float> value;
};

} // namespace lowbit::nn
