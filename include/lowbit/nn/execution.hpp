// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::execution: whether a layer computes on lowbit's own kernels or on the reference path it is
/// checked against.

namespace lowbit::nn {

/// @brief How a layer computes its forward and backward passes.
/// - `kernels`: lowbit's direct kernels where the layer has them (nn::conv2d: stride-1 convolutions on
///   zero-padded planes, kernels/plane_conv.hpp, one image per task);
/// - `reference`: the plain formulation every framework uses (nn::conv2d: im2col + one sgemm for the batch),
///   kept so that tests and users can compare the two step by step (lowbit-train --kernels reference);
/// - `automatic` (the default): `kernels` where they are the faster choice for the build, else `reference`
///   (for nn::conv2d: kernels::plane_conv_preferred, true for optimised builds with 8-lane or wider FMA).
/// The paths compute the same sums; they differ in the order of the float additions only.
enum class execution { automatic, kernels, reference };

} // namespace lowbit::nn
