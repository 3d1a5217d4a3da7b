// SPDX-License-Identifier: MIT
#pragma once
// Test support for comparing a packed model with the fake-quant model it was compiled from: whether the
// Fashion-MNIST files are installed, the argmax of a row of logits (deploy::rounding_audit bounds the rest), and
// the test set the agreement tests run on.

#include "argmax.hpp"

#include <lowbit/data/fashion_mnist.hpp>

#include <doctest/doctest.h>

#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <stdexcept>
#include <filesystem>
#include <system_error>

namespace lowbit::test {

/// Whether Debian's dataset-fashion-mnist is installed (the real-data tests are skipped without it).
inline bool have_fashion_mnist()
{
    std::error_code ec;
    return std::filesystem::is_directory(std::filesystem::path{data::default_fashion_mnist_dir}, ec);
}

/// The test images the real-data agreement tests compare the two models on: all 10000 of Fashion-MNIST's test
/// split, or the first LOWBIT_AGREEMENT_IMAGES of them when that variable is set (a shorter run while working on
/// a model: the audit's checks hold image by image).
inline data::labelled_images agreement_test_set()
{
    data::labelled_images all = data::load_fashion_mnist(data::split::test);
    char const* const limit = std::getenv("LOWBIT_AGREEMENT_IMAGES");
    if (limit == nullptr) return all;
    std::size_t const n = std::min<std::size_t>(all.images.shape(0), std::strtoull(limit, nullptr, 10));
    if (n == 0) throw std::invalid_argument("LOWBIT_AGREEMENT_IMAGES must be a positive count");
    return {.images = xt::view(all.images, xt::range(0, n), xt::all()), .labels = xt::view(all.labels, xt::range(0, n))};
}

} // namespace lowbit::test
