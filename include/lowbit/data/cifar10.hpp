// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Reader for the binary version of CIFAR-10 (Krizhevsky, 2009): 32x32 colour images in 10
/// classes, 50000 for training in `data_batch_1.bin` .. `data_batch_5.bin` and 10000 for testing in
/// `test_batch.bin` (the files of `cifar-10-binary.tar.gz`, directory `cifar-10-batches-bin`).
///
/// A file is a sequence of 3073-byte records with no header: one label byte (0 to 9), then the
/// 32x32 red plane, the green plane and the blue plane, each row-major. That is already the
/// C x H x W order, so a record maps onto one `images(n, :, :, :)` block unchanged.

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "lowbit/data/data_error.hpp"
#include "lowbit/data/fashion_mnist.hpp"  // split
#include "lowbit/data/labelled_images_nchw.hpp"

namespace lowbit::data {

/// @brief Geometry of the CIFAR-10 binary format.
struct cifar10_format {
    static constexpr std::size_t classes = 10;                                 ///< Labels are 0 to 9.
    static constexpr std::size_t channels = 3;                                 ///< R, G, B planes.
    static constexpr std::size_t height = 32;                                  ///< Rows of an image.
    static constexpr std::size_t width = 32;                                   ///< Columns of an image.
    static constexpr std::size_t pixels = channels * height * width;           ///< 3072 bytes.
    static constexpr std::size_t record = 1 + pixels;                          ///< 3073 bytes.
};

namespace detail {

/// Records per read: 3 MB at a time rather than a whole 30 MB file.
inline constexpr std::size_t cifar10_chunk_records = 1024;

/// Number of records of @p file, after checking that it is a non-empty regular file whose size is
/// a whole number of records.
inline std::size_t cifar10_record_count(std::filesystem::path const& file) {
    std::error_code ec;
    auto const status = std::filesystem::status(file, ec);
    if (!std::filesystem::exists(status)) {
        throw data_error{file, "file not found"};
    }
    if (!std::filesystem::is_regular_file(status)) {
        throw data_error{file, "not a regular file"};
    }
    auto const size = std::filesystem::file_size(file, ec);
    if (ec) {
        throw data_error{file, "cannot determine size: " + ec.message()};
    }
    constexpr auto record = cifar10_format::record;
    if (size == 0) {
        throw data_error{file, "empty file: expected records of " + std::to_string(record) + " bytes"};
    }
    if (auto const extra = size % record; extra != 0) {
        throw data_error{file, "truncated: " + std::to_string(extra) + " bytes past the last whole record (" +
                                   std::to_string(size / record) + " records of " + std::to_string(record) +
                                   " bytes, then a partial one)"};
    }
    return static_cast<std::size_t>(size / record);
}

/// Reads the @p count records of @p file into `images[first ..]` and `labels[first ..]`.
inline void read_cifar10_records(std::filesystem::path const& file, std::size_t count, xt::xtensor<float, 4>& images,
                                 xt::xtensor<std::uint8_t, 1>& labels, std::size_t first) {
    constexpr auto record = cifar10_format::record;
    constexpr auto pixels = cifar10_format::pixels;
    std::ifstream in{file, std::ios::binary};
    if (!in) {
        throw data_error{file, "cannot open: " + std::generic_category().message(errno)};
    }
    std::vector<char> buffer(std::min(count, cifar10_chunk_records) * record);
    float* out = images.data() + first * pixels;
    for (std::size_t done = 0; done < count;) {
        auto const n = std::min(count - done, cifar10_chunk_records);
        if (!in.read(buffer.data(), static_cast<std::streamsize>(n * record))) {
            // The size was checked: only a file changed under us, or an I/O error, gets here.
            throw data_error{file, "read error after " + std::to_string(done) + " of " + std::to_string(count) +
                                       " records"};
        }
        for (std::size_t r = 0; r < n; ++r) {
            auto const* rec = reinterpret_cast<unsigned char const*>(buffer.data() + r * record);
            if (rec[0] >= cifar10_format::classes) {
                throw data_error{file, "label " + std::to_string(rec[0]) + " of record " + std::to_string(done + r) +
                                           " is out of range: CIFAR-10 has 10 classes (0 to 9)"};
            }
            labels(first + done + r) = rec[0];
            // A division, not a multiplication by 1/255, so that 255 maps to exactly 1.0f.
            for (std::size_t p = 0; p < pixels; ++p) {
                *out++ = static_cast<float>(rec[1 + p]) / 255.0F;
            }
        }
        done += n;
    }
}

inline labelled_images_nchw read_cifar10_files(std::vector<std::filesystem::path> const& files) {
    // Sizes first: every file is checked before the (up to 600 MB) result is allocated.
    std::vector<std::size_t> counts;
    std::size_t total = 0;
    for (auto const& file : files) {
        counts.push_back(cifar10_record_count(file));
        total += counts.back();
    }
    labelled_images_nchw result;
    result.images = xt::xtensor<float, 4>::from_shape(
        {total, cifar10_format::channels, cifar10_format::height, cifar10_format::width});
    result.labels = xt::xtensor<std::uint8_t, 1>::from_shape({total});
    result.classes = cifar10_format::classes;
    std::size_t first = 0;
    for (std::size_t i = 0; i < files.size(); ++i) {
        read_cifar10_records(files[i], counts[i], result.images, result.labels, first);
        first += counts[i];
    }
    return result;
}

} // namespace detail

/// @brief Reads one CIFAR-10 binary file (any number of records, e.g. `data_batch_3.bin`).
/// @return N x 3 x 32 x 32 images scaled to [0, 1], N labels, and `classes == 10`.
/// @throws data_error naming @p file when it is missing, not a regular file, empty, not a whole
///         number of 3073-byte records ("truncated: K bytes past the last whole record"), has a
///         label of 10 or more (naming the record, counted from 0), or cannot be read.
[[nodiscard]] inline labelled_images_nchw read_cifar10_file(std::filesystem::path const& file) {
    return detail::read_cifar10_files({file});
}

/// @brief Loads one split of CIFAR-10 from @p dir, the `cifar-10-batches-bin` directory.
///
/// split::train concatenates `data_batch_1.bin` .. `data_batch_5.bin` in that order (50000 images
/// for the real dataset); split::test reads `test_batch.bin` (10000 images).
/// @code
/// auto const train = lowbit::data::load_cifar10(lowbit::data::split::train, "/data/cifar-10-batches-bin");
/// // train.images: 50000 x 3 x 32 x 32 floats in [0, 1]; train.labels: 50000 classes in [0, 10)
/// @endcode
/// @throws data_error as read_cifar10_file, for the first bad file; every file is checked for
///         presence and size before any is read.
[[nodiscard]] inline labelled_images_nchw load_cifar10(split s, std::filesystem::path const& dir) {
    std::vector<std::filesystem::path> files;
    if (s == split::train) {
        for (int i = 1; i <= 5; ++i) {
            files.push_back(dir / ("data_batch_" + std::to_string(i) + ".bin"));
        }
    } else {
        files.push_back(dir / "test_batch.bin");
    }
    return detail::read_cifar10_files(files);
}

} // namespace lowbit::data
