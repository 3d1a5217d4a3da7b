// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Loader for Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 28x28 grey images in 10 classes,
/// 60000 for training and 10000 for testing, stored as four IDX files.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <xtensor/xtensor.hpp>

#include "lowbit/data/data_error.hpp"
#include "lowbit/data/idx.hpp"

namespace lowbit::data {

/// @brief Where Debian's `dataset-fashion-mnist` package installs the four files.
inline constexpr std::string_view default_fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";

/// @brief Which part of a dataset to load.
enum class split {
    train,  ///< The training examples (`train-*` files).
    test,   ///< The held-out test examples (`t10k-*` files).
};

/// @brief A set of images with one class label each.
struct labelled_images {
    xt::xtensor<float, 2> images;         ///< One image per row, `rows * cols` pixels scaled to [0, 1].
    xt::xtensor<std::uint8_t, 1> labels;  ///< The class of each row of `images`, below 10.
    std::size_t rows = 0;                 ///< Height of an image, in pixels.
    std::size_t cols = 0;                 ///< Width of an image, in pixels.
};

namespace detail {

/// `dir/name.gz` when it exists, as the dataset is distributed so; else the uncompressed `dir/name`.
/// When neither exists the `.gz` name is returned, so that the error names what is expected.
inline std::filesystem::path prefer_gzip(std::filesystem::path const& dir, std::string const& name) {
    auto gz = dir / (name + ".gz");
    std::error_code ec;
    if (std::filesystem::exists(gz, ec)) {
        return gz;
    }
    auto plain = dir / name;
    return std::filesystem::exists(plain, ec) ? plain : gz;
}

} // namespace detail

/// @brief Loads one split of Fashion-MNIST from @p dir.
///
/// Reads `train-images-idx3-ubyte` and `train-labels-idx1-ubyte` (or the `t10k-` pair for
/// split::test), each with a `.gz` suffix if present, else uncompressed.
/// @code
/// auto const test = lowbit::data::load_fashion_mnist(lowbit::data::split::test);
/// // test.images: 10000 x 784 floats in [0, 1]; test.labels: 10000 classes in [0, 10)
/// @endcode
/// @throws data_error naming the file(s) when a file is missing or malformed (see read_idx), when
///         the numbers of images and labels differ, or when a label is 10 or more.
[[nodiscard]] inline labelled_images load_fashion_mnist(split s,
                                                        std::filesystem::path dir = default_fashion_mnist_dir) {
    std::string const prefix = s == split::train ? "train" : "t10k";
    auto const image_file = detail::prefer_gzip(dir, prefix + "-images-idx3-ubyte");
    auto const label_file = detail::prefer_gzip(dir, prefix + "-labels-idx1-ubyte");

    auto const pixels = read_idx_images(image_file);
    auto labels = read_idx_labels(label_file);

    std::size_t const count = pixels.shape(0);
    if (labels.shape(0) != count) {
        throw data_error{image_file, std::to_string(count) + " images but " + label_file.string() + " has " +
                                         std::to_string(labels.shape(0)) + " labels"};
    }
    for (std::size_t i = 0; i < count; ++i) {
        if (labels(i) >= 10) {
            throw data_error{label_file, "label " + std::to_string(labels(i)) + " of example " + std::to_string(i) +
                                             " is out of range: Fashion-MNIST has 10 classes (0 to 9)"};
        }
    }

    labelled_images result;
    result.rows = pixels.shape(1);
    result.cols = pixels.shape(2);
    result.images = xt::xtensor<float, 2>::from_shape({count, result.rows * result.cols});
    // A plain loop over the contiguous buffers: the reshape and the conversion in one pass. A
    // division, not a multiplication by 1/255, so that 255 maps to exactly 1.0f.
    auto const* in = pixels.data();
    auto* out = result.images.data();
    for (std::size_t i = 0, n = pixels.size(); i < n; ++i) {
        out[i] = static_cast<float>(in[i]) / 255.0F;
    }
    result.labels = std::move(labels);
    return result;
}

} // namespace lowbit::data
