// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The `Dataset` concept (a labelled set of images, flat or N x C x H x W) and the three
/// free functions every algorithm reads a dataset through: dataset_size, sample_shape, num_classes.
///
/// The concept is structural on purpose: it checks the data members `images` and `labels`, so that
/// a plain aggregate such as labelled_images (fashion_mnist.hpp) models it without any member
/// function. The accessors are free functions for the same reason.

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <xtensor/xtensor.hpp>

namespace lowbit::data {

namespace detail {

/// Image tensors a dataset may hold: one flat sample per row, or N x C x H x W.
template <class T>
inline constexpr bool is_dataset_images_v = false;
template <>
inline constexpr bool is_dataset_images_v<xt::xtensor<float, 2>> = true;
template <>
inline constexpr bool is_dataset_images_v<xt::xtensor<float, 4>> = true;

} // namespace detail

/// @brief A labelled set of images.
///
/// Satisfied by any type with the public data members
/// - `images`: an `xt::xtensor<float, 2>` (N x features, one sample per row) or an
///   `xt::xtensor<float, 4>` (N x C x H x W), row-major, the first dimension indexing samples;
/// - `labels`: an `xt::xtensor<std::uint8_t, 1>` holding the class of each sample.
///
/// labelled_images (Fashion-MNIST) and labelled_images_nchw (CIFAR-10) model it. That both tensors
/// have N entries is a run-time property the concept cannot check; loaders guarantee it.
/// @code
/// template <lowbit::data::Dataset D>
/// void describe(D const& d) {
///     std::size_t n = lowbit::data::dataset_size(d);            // number of samples
///     std::vector<std::size_t> s = lowbit::data::sample_shape(d); // {784} or {3, 32, 32}
///     std::size_t k = lowbit::data::num_classes(d);
/// }
/// @endcode
template <class D>
concept Dataset = requires(D const& d) {
    requires detail::is_dataset_images_v<std::remove_cvref_t<decltype(d.images)>>;
    requires std::same_as<std::remove_cvref_t<decltype(d.labels)>, xt::xtensor<std::uint8_t, 1>>;
};

/// @brief The number of samples of @p d: the first dimension of its images.
template <Dataset D>
[[nodiscard]] std::size_t dataset_size(D const& d) noexcept {
    return d.images.shape(0);
}

/// @brief The shape of one sample of @p d: its images' shape without the first dimension,
/// e.g. `{784}` for flat Fashion-MNIST or `{3, 32, 32}` for CIFAR-10.
template <Dataset D>
[[nodiscard]] std::vector<std::size_t> sample_shape(D const& d) {
    auto const& shape = d.images.shape();
    return {shape.begin() + 1, shape.end()};
}

/// @brief The number of classes of @p d.
///
/// The member `classes` when @p d has one and it is not 0 (the loaders set it: 10 for CIFAR-10);
/// otherwise one more than the largest label (0 for an empty set), which undercounts when the
/// highest classes happen to be absent.
template <Dataset D>
[[nodiscard]] std::size_t num_classes(D const& d) {
    if constexpr (requires { { d.classes } -> std::convertible_to<std::size_t>; }) {
        if (auto const declared = static_cast<std::size_t>(d.classes); declared != 0) {
            return declared;
        }
    }
    auto const* first = d.labels.data();
    auto const* last = first + d.labels.size();
    return first == last ? 0 : std::size_t{*std::max_element(first, last)} + 1;
}

} // namespace lowbit::data
