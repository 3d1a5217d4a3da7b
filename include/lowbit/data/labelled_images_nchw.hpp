// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief labelled_images_nchw: a set of multi-channel images (N x C x H x W) with one class each.

#include <cstddef>
#include <cstdint>

#include <xtensor/xtensor.hpp>

namespace lowbit::data {

/// @brief A set of images kept as planes, `N x C x H x W` (the layout of CIFAR-10 and of conv2d
/// inputs), with one class label each. Models Dataset.
struct labelled_images_nchw {
    xt::xtensor<float, 4> images;         ///< N x channels x height x width, pixels scaled to [0, 1].
    xt::xtensor<std::uint8_t, 1> labels;  ///< The class of each image, below `classes`.
    std::size_t classes = 0;              ///< Number of classes (0: unknown, see num_classes).
};

} // namespace lowbit::data
