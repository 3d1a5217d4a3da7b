// SPDX-License-Identifier: MIT
// Tests for lowbit/data/cifar10.hpp and lowbit/data/dataset_concepts.hpp, on small CIFAR-10
// files generated in a temporary directory (no dataset is needed).

#include <lowbit/data/cifar10.hpp>
#include <lowbit/data/dataset_concepts.hpp>
#include <lowbit/data/fashion_mnist.hpp>
#include <lowbit/data/labelled_images_nchw.hpp>

#include <doctest/doctest.h>

#include "../../support/temp_dir.hpp"

#include <chrono>
#include <cstddef>
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
using bytes = std::vector<std::uint8_t>;

/// A fresh temporary directory for this file's cases.
struct cifar_temp_dir : lowbit::test::temp_dir {
    cifar_temp_dir() : lowbit::test::temp_dir("cifar10") {}
};

constexpr std::size_t record_size = 3073;

/// The pixel byte at offset p (0 .. 3071) of record r: distinct across records and planes.
std::uint8_t pixel_byte(std::size_t r, std::size_t p) {
    return static_cast<std::uint8_t>((r * 37 + p * 11 + p / 1024) % 256);
}

/// Records with the given labels; record r (counted from @p first) has pixels pixel_byte(r, p).
bytes make_records(std::vector<std::uint8_t> const& labels, std::size_t first = 0) {
    bytes out;
    for (std::size_t r = 0; r < labels.size(); ++r) {
        out.push_back(labels[r]);
        for (std::size_t p = 0; p < 3072; ++p) {
            out.push_back(pixel_byte(first + r, p));
        }
    }
    return out;
}

void write_file(fs::path const& file, bytes const& data) {
    std::ofstream out{file, std::ios::binary};
    out.write(reinterpret_cast<char const*>(data.data()), static_cast<std::streamsize>(data.size()));
    REQUIRE(out.good());
}

/// Checks every pixel and label of @p d against records first .. first + labels.size() - 1.
void check_contents(lowbit::data::labelled_images_nchw const& d, std::vector<std::uint8_t> const& labels) {
    REQUIRE(d.images.shape(0) == labels.size());
    REQUIRE(d.labels.shape(0) == labels.size());
    std::size_t mismatches = 0;
    for (std::size_t n = 0; n < labels.size(); ++n) {
        CHECK(d.labels(n) == labels[n]);
        for (std::size_t c = 0; c < 3; ++c) {
            for (std::size_t h = 0; h < 32; ++h) {
                for (std::size_t w = 0; w < 32; ++w) {
                    float const expected = static_cast<float>(pixel_byte(n, c * 1024 + h * 32 + w)) / 255.0F;
                    mismatches += d.images(n, c, h, w) == expected ? 0 : 1;
                }
            }
        }
    }
    CHECK(mismatches == 0);
}

} // namespace

TEST_CASE("read_cifar10_file reads records as N x 3 x 32 x 32 planes scaled to 0..1") {
    cifar_temp_dir dir;
    std::vector<std::uint8_t> const labels{3, 0, 9};
    write_file(dir / "data_batch_1.bin", make_records(labels));
    auto const d = lowbit::data::read_cifar10_file(dir / "data_batch_1.bin");
    CHECK(d.images.shape(1) == 3);
    CHECK(d.images.shape(2) == 32);
    CHECK(d.images.shape(3) == 32);
    CHECK(d.classes == 10);
    check_contents(d, labels);
}

TEST_CASE("read_cifar10_file maps byte 0 to 0 and byte 255 to exactly 1") {
    cifar_temp_dir dir;
    bytes data(record_size, 0);
    data[0] = 4;
    data[1] = 255;         // R, row 0, column 0
    data[1 + 2048 + 33] = 255;  // B, row 1, column 1
    data[1 + 1024 + 31] = 128;  // G, row 0, column 31
    write_file(dir / "one.bin", data);
    auto const d = lowbit::data::read_cifar10_file(dir / "one.bin");
    CHECK(d.labels(0) == 4);
    CHECK(d.images(0, 0, 0, 0) == 1.0F);
    CHECK(d.images(0, 2, 1, 1) == 1.0F);
    CHECK(d.images(0, 1, 0, 31) == doctest::Approx(128.0 / 255.0));
    CHECK(d.images(0, 0, 0, 1) == 0.0F);
    CHECK(d.images(0, 1, 1, 1) == 0.0F);
}

TEST_CASE("load_cifar10 concatenates the five training batches in order") {
    cifar_temp_dir dir;
    std::vector<std::vector<std::uint8_t>> const per_file{{1}, {2, 3}, {4}, {5, 6, 7}, {8, 0}};
    std::vector<std::uint8_t> all;
    for (std::size_t f = 0; f < per_file.size(); ++f) {
        write_file(dir / ("data_batch_" + std::to_string(f + 1) + ".bin"), make_records(per_file[f], all.size()));
        all.insert(all.end(), per_file[f].begin(), per_file[f].end());
    }
    write_file(dir / "test_batch.bin", make_records({9, 9}));
    auto const train = lowbit::data::load_cifar10(split::train, dir.path());
    CHECK(train.images.shape(0) == 9);
    CHECK(train.classes == 10);
    check_contents(train, all);

    auto const test = lowbit::data::load_cifar10(split::test, dir.path());
    check_contents(test, {9, 9});
}

TEST_CASE("CIFAR-10 and Fashion-MNIST sets model Dataset") {
    static_assert(lowbit::data::Dataset<lowbit::data::labelled_images_nchw>);
    static_assert(lowbit::data::Dataset<lowbit::data::labelled_images>);
    static_assert(!lowbit::data::Dataset<int>);
    static_assert(!lowbit::data::Dataset<xt::xtensor<float, 2>>);
    struct wrong_labels {
        xt::xtensor<float, 2> images;
        xt::xtensor<int, 1> labels;
    };
    struct wrong_rank {
        xt::xtensor<float, 3> images;
        xt::xtensor<std::uint8_t, 1> labels;
    };
    static_assert(!lowbit::data::Dataset<wrong_labels>);
    static_assert(!lowbit::data::Dataset<wrong_rank>);

    cifar_temp_dir dir;
    write_file(dir / "b.bin", make_records({2, 5}));
    auto const cifar = lowbit::data::read_cifar10_file(dir / "b.bin");
    CHECK(lowbit::data::dataset_size(cifar) == 2);
    CHECK(lowbit::data::sample_shape(cifar) == std::vector<std::size_t>{3, 32, 32});
    CHECK(lowbit::data::num_classes(cifar) == 10);  // declared, although only labels 2 and 5 occur

    lowbit::data::labelled_images flat;
    flat.images = xt::xtensor<float, 2>::from_shape({3, 784});
    flat.labels = xt::xtensor<std::uint8_t, 1>{1, 6, 0};
    CHECK(lowbit::data::dataset_size(flat) == 3);
    CHECK(lowbit::data::sample_shape(flat) == std::vector<std::size_t>{784});
    CHECK(lowbit::data::num_classes(flat) == 7);  // no `classes` member: largest label + 1

    lowbit::data::labelled_images_nchw empty;
    CHECK(lowbit::data::num_classes(empty) == 0);
}

TEST_CASE("a missing CIFAR-10 file is an error naming it") {
    cifar_temp_dir dir;
    auto const file = dir / "data_batch_1.bin";
    CHECK_THROWS_WITH_AS((void)lowbit::data::read_cifar10_file(file),
                         doctest::Contains((file.string() + ": file not found").c_str()), data_error);
}

TEST_CASE("load_cifar10 names the first missing batch") {
    cifar_temp_dir dir;
    write_file(dir / "data_batch_1.bin", make_records({1}));
    write_file(dir / "data_batch_2.bin", make_records({1}));
    auto const missing = (dir / "data_batch_3.bin").string() + ": file not found";
    CHECK_THROWS_WITH_AS((void)lowbit::data::load_cifar10(split::train, dir.path()), doctest::Contains(missing.c_str()),
                         data_error);
    auto const missing_test = (dir / "test_batch.bin").string() + ": file not found";
    CHECK_THROWS_WITH_AS((void)lowbit::data::load_cifar10(split::test, dir.path()),
                         doctest::Contains(missing_test.c_str()), data_error);
}

TEST_CASE("a directory in place of a CIFAR-10 file is an error") {
    cifar_temp_dir dir;
    fs::create_directory(dir / "test_batch.bin");
    CHECK_THROWS_WITH_AS((void)lowbit::data::load_cifar10(split::test, dir.path()),
                         doctest::Contains("test_batch.bin: not a regular file"), data_error);
}

TEST_CASE("an empty CIFAR-10 file is an error") {
    cifar_temp_dir dir;
    write_file(dir / "empty.bin", {});
    CHECK_THROWS_WITH_AS((void)lowbit::data::read_cifar10_file(dir / "empty.bin"),
                         doctest::Contains("empty.bin: empty file"), data_error);
}

TEST_CASE("a CIFAR-10 file that is not a whole number of records is truncated") {
    cifar_temp_dir dir;
    auto data = make_records({1, 2});
    data.resize(data.size() + 100, 7);
    write_file(dir / "cut.bin", data);
    CHECK_THROWS_WITH_AS((void)lowbit::data::read_cifar10_file(dir / "cut.bin"),
                         doctest::Contains("cut.bin: truncated: 100 bytes past the last whole record (2 records"),
                         data_error);

    write_file(dir / "short.bin", bytes(50, 1));
    CHECK_THROWS_WITH_AS((void)lowbit::data::read_cifar10_file(dir / "short.bin"),
                         doctest::Contains("short.bin: truncated: 50 bytes past the last whole record (0 records"),
                         data_error);

    auto one_short = make_records({1, 2});
    one_short.pop_back();
    write_file(dir / "one_short.bin", one_short);
    CHECK_THROWS_WITH_AS((void)lowbit::data::read_cifar10_file(dir / "one_short.bin"),
                         doctest::Contains("truncated: 3072 bytes past the last whole record (1 records"), data_error);
}

TEST_CASE("a CIFAR-10 label of 10 or more is an error naming the record") {
    cifar_temp_dir dir;
    write_file(dir / "bad.bin", make_records({0, 10, 3}));
    CHECK_THROWS_WITH_AS((void)lowbit::data::read_cifar10_file(dir / "bad.bin"),
                         doctest::Contains("bad.bin: label 10 of record 1 is out of range"), data_error);

    write_file(dir / "bad255.bin", make_records({0, 1, 2, 255}));
    CHECK_THROWS_WITH_AS((void)lowbit::data::read_cifar10_file(dir / "bad255.bin"),
                         doctest::Contains("label 255 of record 3 is out of range"), data_error);
}

TEST_CASE("a bad label far into a CIFAR-10 file is found past the first read chunk") {
    cifar_temp_dir dir;
    std::vector<std::uint8_t> labels(1100, 1);
    labels[1050] = 12;
    write_file(dir / "long.bin", make_records(labels));
    CHECK_THROWS_WITH_AS((void)lowbit::data::read_cifar10_file(dir / "long.bin"),
                         doctest::Contains("label 12 of record 1050"), data_error);
    labels[1050] = 1;
    write_file(dir / "long_ok.bin", make_records(labels));
    check_contents(lowbit::data::read_cifar10_file(dir / "long_ok.bin"), labels);
}

TEST_CASE("a data_error from the CIFAR-10 reader keeps file and problem apart") {
    cifar_temp_dir dir;
    write_file(dir / "empty.bin", {});
    try {
        (void)lowbit::data::read_cifar10_file(dir / "empty.bin");
        FAIL("no exception");
    } catch (data_error const& e) {
        CHECK(e.file() == dir / "empty.bin");
        CHECK(e.problem() == "empty file: expected records of 3073 bytes");
    }
}
