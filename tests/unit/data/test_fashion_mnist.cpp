// SPDX-License-Identifier: MIT
// Tests for lowbit/data/fashion_mnist.hpp: the real dataset when installed (it is on CI, from
// Debian's dataset-fashion-mnist), and small generated directories for the error cases.

#include <lowbit/data/fashion_mnist.hpp>

#include <doctest/doctest.h>

#include "../../support/idx_files.hpp"
#include "../../support/temp_dir.hpp"

#include <array>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using lowbit::data::data_error;
using lowbit::data::split;
using lowbit::test::bytes;
using lowbit::test::make_idx;
using lowbit::test::write_gz;
using lowbit::test::write_raw;

bool have_fashion_mnist() {
    std::error_code ec;
    return fs::is_directory(fs::path{lowbit::data::default_fashion_mnist_dir}, ec);
}

/// A fresh temporary directory for this file's cases.
struct fashion_dir : lowbit::test::temp_dir {
    fashion_dir() : lowbit::test::temp_dir("fashion_mnist") {}
};

/// 3 images of 2x2 pixels and their labels.
bytes const small_pixels{0, 51, 102, 255, 1, 2, 3, 4, 5, 6, 7, 8};
bytes const small_labels{0, 9, 4};

} // namespace

TEST_CASE("Fashion-MNIST availability") {
    if (!have_fashion_mnist()) {
        MESSAGE("Fashion-MNIST not found in ", lowbit::data::default_fashion_mnist_dir,
                ": the tests on the real data are skipped (apt-get install dataset-fashion-mnist)");
    }
}

TEST_CASE("load_fashion_mnist reads the real test split" * doctest::skip(!have_fashion_mnist())) {
    auto const test = lowbit::data::load_fashion_mnist(split::test);
    CHECK(test.rows == 28);
    CHECK(test.cols == 28);
    REQUIRE(test.images.shape(0) == 10000);
    REQUIRE(test.images.shape(1) == 784);
    REQUIRE(test.labels.shape(0) == 10000);

    std::array<std::size_t, 10> counts{};
    for (auto label : test.labels) {
        REQUIRE(label < 10);
        ++counts[label];
    }
    for (std::size_t c = 0; c < 10; ++c) {
        CAPTURE(c);
        CHECK(counts[c] == 1000);
    }
    // The first examples, as in the upstream files: ankle boot, pullover, trouser, trouser, shirt.
    CHECK(test.labels(0) == 9);
    CHECK(test.labels(1) == 2);
    CHECK(test.labels(4) == 6);

    float lowest = 1.0F;
    float highest = 0.0F;
    std::int64_t sum = 0;
    for (auto pixel : test.images) {
        lowest = std::min(lowest, pixel);
        highest = std::max(highest, pixel);
        sum += std::lround(static_cast<double>(pixel) * 255.0);
    }
    CHECK(lowest == 0.0F);
    CHECK(highest == 1.0F);
    // Scaling back recovers the raw bytes, whose sum over t10k-images-idx3-ubyte is 573469082.
    CHECK(sum == 573469082);
}

TEST_CASE("load_fashion_mnist reads the real training split" * doctest::skip(!have_fashion_mnist())) {
    auto const train = lowbit::data::load_fashion_mnist(split::train, lowbit::data::default_fashion_mnist_dir);
    CHECK(train.images.shape(0) == 60000);
    CHECK(train.images.shape(1) == 784);
    CHECK(train.labels.shape(0) == 60000);
    CHECK(train.labels(0) == 9);
}

TEST_CASE("load_fashion_mnist reads uncompressed files and scales pixels to 0..1") {
    fashion_dir dir;
    write_raw(dir / "t10k-images-idx3-ubyte", make_idx({3, 2, 2}, small_pixels));
    write_raw(dir / "t10k-labels-idx1-ubyte", make_idx({3}, small_labels));
    auto const data = lowbit::data::load_fashion_mnist(split::test, dir.path());
    CHECK(data.rows == 2);
    CHECK(data.cols == 2);
    REQUIRE(data.images.shape(0) == 3);
    REQUIRE(data.images.shape(1) == 4);
    CHECK(data.images(0, 0) == 0.0F);
    CHECK(data.images(0, 1) == doctest::Approx(0.2));
    CHECK(data.images(0, 2) == doctest::Approx(0.4));
    CHECK(data.images(0, 3) == 1.0F);
    CHECK(data.images(2, 3) == doctest::Approx(8.0 / 255.0));
    CHECK(data.labels(1) == 9);
}

TEST_CASE("load_fashion_mnist prefers the .gz files") {
    fashion_dir dir;
    write_gz(dir / "train-images-idx3-ubyte.gz", make_idx({3, 2, 2}, small_pixels));
    write_gz(dir / "train-labels-idx1-ubyte.gz", make_idx({3}, small_labels));
    // Uncompressed twins that would fail if they were read.
    write_raw(dir / "train-images-idx3-ubyte", bytes{'x'});
    write_raw(dir / "train-labels-idx1-ubyte", bytes{'x'});
    auto const data = lowbit::data::load_fashion_mnist(split::train, dir.path());
    CHECK(data.images.shape(0) == 3);
    CHECK(data.labels(2) == 4);
}

TEST_CASE("a missing directory names the expected file") {
    fashion_dir dir;
    auto const missing = dir / "nowhere";
    auto const expected = "lowbit: " + (missing / "t10k-images-idx3-ubyte.gz").string() + ": file not found";
    CHECK_THROWS_WITH_AS((void)lowbit::data::load_fashion_mnist(split::test, missing), doctest::Contains(expected.c_str()),
                         data_error);
}

TEST_CASE("different numbers of images and labels are an error naming both files") {
    fashion_dir dir;
    write_gz(dir / "t10k-images-idx3-ubyte.gz", make_idx({3, 2, 2}, small_pixels));
    write_gz(dir / "t10k-labels-idx1-ubyte.gz", make_idx({2}, {0, 1}));
    auto const expected = "lowbit: " + (dir / "t10k-images-idx3-ubyte.gz").string() + ": 3 images but " +
                          (dir / "t10k-labels-idx1-ubyte.gz").string() + " has 2 labels";
    CHECK_THROWS_WITH_AS((void)lowbit::data::load_fashion_mnist(split::test, dir.path()), expected.c_str(), data_error);
}

TEST_CASE("a label of 10 or more is an error naming the labels file") {
    fashion_dir dir;
    write_gz(dir / "t10k-images-idx3-ubyte.gz", make_idx({3, 2, 2}, small_pixels));
    write_gz(dir / "t10k-labels-idx1-ubyte.gz", make_idx({3}, {0, 10, 1}));
    auto const expected = "lowbit: " + (dir / "t10k-labels-idx1-ubyte.gz").string() + ": label 10 of example 1";
    CHECK_THROWS_WITH_AS((void)lowbit::data::load_fashion_mnist(split::test, dir.path()), doctest::Contains(expected.c_str()),
                         data_error);
}
