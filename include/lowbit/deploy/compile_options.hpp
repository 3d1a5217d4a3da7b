// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::compile_options: what deploy::compile needs besides the trained model -- the input map of
/// the first layer and, for a CNN, the size of its input images.
///
/// @code
/// lowbit::deploy::packed_model const packed =
///     lowbit::deploy::compile(cnn, {.input = {.scale = 1.0f / 255.0f}, .height = 28, .width = 28});
/// @endcode

#include <lowbit/deploy/input_map.hpp>

#include <cstddef>

namespace lowbit::deploy {

/// @brief Options of compile().
struct compile_options {
    /// How the float input maps to the first layer's 8-bit codes. The default, scale 1/255 and offset 0, is
    /// exact for images in [0, 1] (lowbit::data's Fashion-MNIST); input_map::calibrate(batch) gives it from
    /// data, and lowbit-infer sets it to lowbit-train's standardisation.
    deploy::input_map input{};
    /// The input images' height and width, for a model whose first layer that knows the input's layout reads
    /// images (a convolution, a 4-d BatchNorm): its flat input rows are channels x height x width values. A model
    /// that accepts several sizes (28 and 29 both pool down to 7) cannot tell them, so compile() asks for them
    /// and refuses a model that reads images without them. An MLP ignores them.
    std::size_t height = 0;
    std::size_t width = 0;
};

} // namespace lowbit::deploy
