// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief gather_rows: copies selected samples (rows along the first dimension) of a tensor into a
/// reusable batch tensor.

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>

#include <xtensor/xtensor.hpp>

namespace lowbit::data {

/// @brief Copies the samples @p idx of @p x, in that order, into @p out: `out[k] = x[idx[k]]`
/// along the first dimension, the other dimensions kept.
///
/// Works for any rank: flat images (N x features), N x C x H x W images, and labels (N). @p out
/// is resized only when its shape differs from `idx.size() x (x's other dimensions)`, so reusing
/// one @p out across the batches of an epoch allocates at most twice (full batches, then a
/// smaller last one). @p out must not be @p x.
/// @code
/// lowbit::data::batcher b{train.labels.size(), {.batch = 128, .seed = 1}};
/// xt::xtensor<float, 4> xb;
/// xt::xtensor<std::uint8_t, 1> yb;
/// for (std::size_t i = 0; i < b.batches(); ++i) {
///     lowbit::data::gather_rows(train.images, b.batch_indices(i), xb);
///     lowbit::data::gather_rows(train.labels, b.batch_indices(i), yb);
/// }
/// @endcode
/// @throws std::out_of_range when an index is not below `x.shape(0)`; @p out is then unchanged.
template <class T, std::size_t N>
    requires(N >= 1)
void gather_rows(xt::xtensor<T, N> const& x, std::span<std::size_t const> idx, xt::xtensor<T, N>& out) {
    std::size_t const rows = x.shape(0);
    for (auto i : idx) {
        if (i >= rows) {
            throw std::out_of_range{"lowbit: gather_rows: row " + std::to_string(i) + " out of range (" +
                                    std::to_string(rows) + " rows)"};
        }
    }
    std::array<std::size_t, N> shape{};
    std::copy(x.shape().begin(), x.shape().end(), shape.begin());
    shape[0] = idx.size();
    if (!std::equal(shape.begin(), shape.end(), out.shape().begin())) {
        out.resize(shape);
    }
    std::size_t row_size = 1;
    for (std::size_t dim = 1; dim < N; ++dim) {
        row_size *= shape[dim];
    }
    // Default xtensor layout is row-major and contiguous: a sample is row_size consecutive elements.
    T const* in = x.data();
    T* dst = out.data();
    for (std::size_t k = 0; k < idx.size(); ++k) {
        std::copy_n(in + idx[k] * row_size, row_size, dst + k * row_size);
    }
}

} // namespace lowbit::data
