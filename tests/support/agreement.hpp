// SPDX-License-Identifier: MIT
#pragma once
// Test support for comparing a packed model with the fake-quant model it was compiled from: whether the
// Fashion-MNIST files are installed, the argmax of a row of logits (deploy::rounding_audit bounds the rest), and
// the general path's audit against a fixed shape's.

#include "argmax.hpp"

#include <lowbit/data/fashion_mnist.hpp>
#include <lowbit/deploy/audit.hpp>
#include <lowbit/deploy/compile_options.hpp>
#include <lowbit/deploy/lower.hpp>

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

/// The general path (deploy::lower_model, audited step by step by deploy::audit's packed_model overload) against
/// the audit @p fixed of the fixed-shape packed model of the same @p model on the same rows @p x: the same
/// thresholds give the same codes, so every count must be the same.
template <class Model>
void check_general_audit(Model& model, deploy::rounding_audit const& fixed, xt::xtensor<float, 2> const& x,
                         xt::xtensor<std::uint8_t, 1> const& labels, deploy::compile_options const& options)
{
    deploy::packed_model const general = deploy::lower_model(model, options);
    deploy::rounding_audit const g = deploy::audit(model, general, x, labels, options);
    MESSAGE("general path: " << g.values << " codes compared, " << g.differing << " differing, " << g.unexplained
                             << " unexplained, " << g.ambiguous << " ambiguous; argmax disagreements "
                             << g.argmax_disagreements);
    CHECK(g.values == fixed.values);
    CHECK(g.skipped == fixed.skipped);
    CHECK(g.differing == fixed.differing);
    CHECK(g.unexplained == 0);
    CHECK(g.ambiguous == fixed.ambiguous);
    CHECK(g.argmax_disagreements == fixed.argmax_disagreements);
    CHECK(g.argmax_disagreements_where_codes_agree == 0);
    CHECK(g.logits_outside == 0);
    CHECK(g.packed_correct == fixed.packed_correct);
    CHECK(g.fake_correct == fixed.fake_correct);
}

} // namespace lowbit::test
