// SPDX-License-Identifier: MIT
// Tests for lowbit/data/idx.hpp: IDX files are generated under a temporary directory, plain and
// gzip-compressed, and every failure must be a data_error naming the file and the problem.

#include <lowbit/data/idx.hpp>

#include <doctest/doctest.h>

#include "../../support/idx_files.hpp"
#include "../../support/temp_dir.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using lowbit::data::data_error;
using lowbit::test::bytes;
using lowbit::test::gzip_bytes;
using lowbit::test::make_idx;
using lowbit::test::write_gz;
using lowbit::test::write_raw;

/// A fresh temporary directory for this file's cases.
struct idx_dir : lowbit::test::temp_dir {
    idx_dir() : lowbit::test::temp_dir("idx") {}
};

bytes iota_bytes(std::size_t n) {
    bytes out(n);
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = static_cast<std::uint8_t>(i * 7 + 3);
    }
    return out;
}

/// Both encodings of one content: each check below runs on the plain and on the gzip file.
std::vector<fs::path> write_both(idx_dir const& dir, std::string const& name, bytes const& content) {
    return {write_raw(dir / name, content), write_gz(dir / (name + ".gz"), content)};
}

/// The error thrown by @p read for @p file must be a data_error containing @p fragment, the file
/// name, and the `lowbit: <file>: ` prefix.
template <class Read>
void check_error(Read read, fs::path const& file, std::string const& fragment) {
    INFO("file: ", file.string(), ", expected fragment: ", fragment);
    CHECK_THROWS_WITH_AS(read(file), doctest::Contains(fragment.c_str()), data_error);
    std::string const prefix = "lowbit: " + file.string() + ": ";
    CHECK_THROWS_WITH_AS(read(file), doctest::Contains(prefix.c_str()), data_error);
    try {
        (void)read(file);
    } catch (data_error const& e) {
        CHECK(e.file() == file);
        CHECK(e.problem().find(fragment) != std::string::npos);
    }
}

auto const read_idx = [](fs::path const& f) { return lowbit::data::read_idx(f); };
auto const read_images = [](fs::path const& f) { return lowbit::data::read_idx_images(f); };
auto const read_labels = [](fs::path const& f) { return lowbit::data::read_idx_labels(f); };

} // namespace

TEST_CASE("read_idx round-trips a 3-D unsigned byte array, plain and gzip") {
    idx_dir dir;
    auto const data = iota_bytes(2 * 3 * 4);
    for (auto const& file : write_both(dir, "images-idx3-ubyte", make_idx({2, 3, 4}, data))) {
        CAPTURE(file.string());
        auto const array = lowbit::data::read_idx(file);
        CHECK(array.shape == std::vector<std::size_t>{2, 3, 4});
        CHECK(array.data == data);

        auto const images = lowbit::data::read_idx_images(file);
        REQUIRE(images.shape(0) == 2);
        REQUIRE(images.shape(1) == 3);
        REQUIRE(images.shape(2) == 4);
        CHECK(images(0, 0, 0) == data[0]);
        CHECK(images(0, 1, 2) == data[1 * 4 + 2]);
        CHECK(images(1, 2, 3) == data[23]);
    }
}

TEST_CASE("read_idx_labels reads a rank-1 file") {
    idx_dir dir;
    bytes const labels{9, 0, 3, 255, 1};
    for (auto const& file : write_both(dir, "labels-idx1-ubyte", make_idx({5}, labels))) {
        CAPTURE(file.string());
        auto const read = lowbit::data::read_idx_labels(file);
        REQUIRE(read.size() == labels.size());
        for (std::size_t i = 0; i < labels.size(); ++i) {
            CHECK(read(i) == labels[i]);
        }
    }
}

TEST_CASE("gzip is recognised by its magic bytes, not by the file name") {
    idx_dir dir;
    auto const content = make_idx({3}, {1, 2, 3});
    CHECK(lowbit::data::read_idx(write_gz(dir / "compressed.idx", content)).data == bytes{1, 2, 3});
    CHECK(lowbit::data::read_idx(write_raw(dir / "plain.gz", content)).data == bytes{1, 2, 3});
}

TEST_CASE("a dimension of size zero gives an empty array") {
    idx_dir dir;
    for (auto const& file : write_both(dir, "empty", make_idx({0, 28, 28}, {}))) {
        auto const images = lowbit::data::read_idx_images(file);
        CHECK(images.shape(0) == 0);
        CHECK(images.shape(1) == 28);
        CHECK(images.size() == 0);
    }
}

TEST_CASE("a missing file is reported, with the package to install for /usr/share/datasets") {
    idx_dir dir;
    check_error(read_idx, dir / "no-such-file.gz", "file not found");
    try {
        (void)lowbit::data::read_idx(dir / "no-such-file.gz");
    } catch (data_error const& e) {
        // No package to suggest outside /usr/share/datasets.
        CHECK(std::string{e.what()}.find("apt-get") == std::string::npos);
    }
    check_error(read_idx, "/usr/share/datasets/fashion-mnist/no-such-file-idx3-ubyte.gz",
                "apt-get install dataset-fashion-mnist");
    check_error(read_images, dir.path(), "not a regular file");
}

TEST_CASE("a file that is not IDX is rejected by its magic number") {
    idx_dir dir;
    for (auto const& file : write_both(dir, "text", bytes{'h', 'e', 'l', 'l', 'o', '\n'})) {
        check_error(read_idx, file, "not an IDX file: bad magic number 0x68656C6C");
    }
    for (auto const& file : write_both(dir, "unknown-type", make_idx({1}, {0}, 0x07))) {
        check_error(read_idx, file, "not an IDX file: unsupported type code 0x07");
    }
}

TEST_CASE("element types other than unsigned byte are named and rejected") {
    idx_dir dir;
    for (auto const& file : write_both(dir, "float", make_idx({1}, {0, 0, 0, 0}, 0x0D))) {
        check_error(read_idx, file, "unsupported type code 0x0D (float)");
    }
}

TEST_CASE("a header with zero dimensions is a bad rank") {
    idx_dir dir;
    for (auto const& file : write_both(dir, "rank0", make_idx({}, {}))) {
        check_error(read_idx, file, "bad rank");
    }
}

TEST_CASE("a truncated header is reported") {
    idx_dir dir;
    for (auto const& file : write_both(dir, "empty-file", bytes{})) {
        check_error(read_idx, file, "truncated header: expected 4 bytes of magic number, got 0");
    }
    for (auto const& file : write_both(dir, "short-magic", bytes{0, 0})) {
        check_error(read_idx, file, "truncated header: expected 4 bytes of magic number, got 2");
    }
    auto sizes_cut = make_idx({2, 3, 4}, {});
    sizes_cut.resize(4 + 5);
    for (auto const& file : write_both(dir, "short-sizes", sizes_cut)) {
        check_error(read_idx, file, "truncated header: expected 12 bytes of dimension sizes, got 5");
    }
}

TEST_CASE("truncated data is reported with the expected and actual sizes") {
    idx_dir dir;
    for (auto const& file : write_both(dir, "short-data", make_idx({2, 3, 4}, iota_bytes(20)))) {
        check_error(read_idx, file, "truncated: expected 24 bytes of data (2 x 3 x 4), got 20");
    }
}

TEST_CASE("bytes after the data are an error") {
    idx_dir dir;
    for (auto const& file : write_both(dir, "long-data", make_idx({2, 3, 4}, iota_bytes(27)))) {
        check_error(read_idx, file, "trailing garbage: 3 bytes after the 24 bytes of data");
    }
}

TEST_CASE("a corrupt gzip stream is reported") {
    idx_dir dir;
    // A valid 10-byte gzip member header (deflate, no flags), then bytes that are not deflate.
    bytes garbage{0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03};
    for (int i = 0; i < 64; ++i) {
        garbage.push_back(static_cast<std::uint8_t>(0xFF - i));
    }
    check_error(read_idx, write_raw(dir / "garbage.gz", garbage), "corrupt gzip stream");

    auto const good = gzip_bytes(make_idx({4, 8, 8}, iota_bytes(256)));

    // A flipped byte in the CRC-32 trailer: the data decompresses but fails verification.
    auto bad_crc = good;
    bad_crc[bad_crc.size() - 8] ^= 0xFFU;
    check_error(read_idx, write_raw(dir / "bad-crc.gz", bad_crc), "corrupt gzip stream");

    // A compressed file cut in the middle.
    auto cut = good;
    cut.resize(good.size() / 2);
    check_error(read_idx, write_raw(dir / "cut.gz", cut), "truncated gzip stream: unexpected end of file");
}

TEST_CASE("absurd sizes are rejected before allocating") {
    idx_dir dir;
    for (auto const& file : write_both(dir, "huge", make_idx({65536, 65536, 65536}, {}))) {
        check_error(read_idx, file, "absurd size: 65536 x 65536 x 65536 elements exceeds the limit");
    }
    // 255 dimensions of 2^32 - 1: the product would overflow any integer type.
    for (auto const& file : write_both(dir, "overflow", make_idx(std::vector<std::uint32_t>(255, 0xFFFFFFFFU), {}))) {
        check_error(read_idx, file, "absurd size");
    }
    // Exactly at the limit, 2^31 elements, but with a few bytes only: a plain file is checked
    // against its size, a gzip one grows its buffer with the data actually present.
    for (auto const& file : write_both(dir, "liar", make_idx({32768, 65536}, iota_bytes(10)))) {
        check_error(read_idx, file, "truncated: expected 2147483648 bytes of data (32768 x 65536), got 10");
    }
}

TEST_CASE("a size of 0 does not lift the limit on the other sizes (fuzz finding)") {
    // The outside campaign's input (issue 11): images of 0 x 4294967295 x 4294967055 and no data. It passed, and
    // read_idx_images then overflowed xtensor's signed stride product (UBSan: xstrides.hpp:464).
    bytes const finding{0x00, 0x00, 0x08, 0x03, 0x00, 0x00, 0x00, 0x00,
                        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f};
    REQUIRE(finding == make_idx({0, 0xFFFFFFFFU, 0xFFFFFF0FU}, {}));
    idx_dir dir;
    for (auto const& file : write_both(dir, "zero-then-huge", finding)) {
        check_error(read_images, file,
                    "absurd size: 0 x 4294967295 x 4294967055: the sizes other than 0 multiply to more than the "
                    "limit of 2^31");
    }
    // At the limit, an empty array is still fine.
    for (auto const& file : write_both(dir, "zero-at-limit", make_idx({32768, 0, 65536}, {}))) {
        auto const images = lowbit::data::read_idx_images(file);
        CHECK(images.shape()[0] == 32768);
        CHECK(images.shape()[2] == 65536);
        CHECK(images.size() == 0);
    }
}

TEST_CASE("read_idx_images and read_idx_labels check the rank") {
    idx_dir dir;
    for (auto const& file : write_both(dir, "rank1", make_idx({4}, {1, 2, 3, 4}))) {
        check_error(read_images, file, "bad rank: expected 3 dimensions (images x rows x cols), got 1 (4)");
    }
    for (auto const& file : write_both(dir, "rank3", make_idx({1, 2, 2}, {1, 2, 3, 4}))) {
        check_error(read_labels, file, "bad rank: expected 1 dimension (labels), got 3 (1 x 2 x 2)");
    }
}
