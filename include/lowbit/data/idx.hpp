// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Reader for the IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed.
///
/// An IDX file is a 4-byte big-endian magic number `0x0000TTDD` (TT: element type code, DD: number
/// of dimensions), then DD big-endian `uint32` sizes, then the elements in row-major order. Only
/// unsigned bytes (type 0x08) are read, since every MNIST-like dataset stores pixels and labels so;
/// the other type codes are recognised so that the error names the type instead of "bad magic".

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <xtensor/xtensor.hpp>
#include <zlib.h>

#include "lowbit/data/data_error.hpp"

namespace lowbit::data {

/// @brief The contents of an IDX file of unsigned bytes: its shape and its elements, row-major.
struct idx_array {
    std::vector<std::size_t> shape;  ///< One size per dimension, outermost first.
    std::vector<std::uint8_t> data;  ///< The product of `shape` elements, row-major.
};

namespace detail {

/// Most elements an IDX file may declare. Checked before allocating, so a corrupt or hostile
/// header cannot make us reserve terabytes (or overflow the product of the sizes).
inline constexpr std::size_t idx_max_elements = std::size_t{1} << 31;

/// Largest single gzread: its length is an `unsigned` and its result an `int`.
inline constexpr std::size_t idx_max_read = std::size_t{1} << 30;

/// Growth step for gzip input, whose decompressed size is only known once read: memory then
/// follows the data actually present rather than the size the header claims.
inline constexpr std::size_t idx_gzip_chunk = std::size_t{1} << 20;

struct gz_closer {
    void operator()(gzFile_s* file) const noexcept { gzclose(file); }
};
using gz_handle = std::unique_ptr<gzFile_s, gz_closer>;

inline std::string hex(std::uint32_t value, int digits) {
    constexpr std::string_view digit_chars = "0123456789ABCDEF";
    std::string out = "0x";
    for (int i = digits - 1; i >= 0; --i) {
        out += digit_chars[(value >> (4 * i)) & 0xFU];
    }
    return out;
}

inline std::string shape_string(std::vector<std::size_t> const& shape) {
    std::string out;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        out += (i == 0 ? "" : " x ") + std::to_string(shape[i]);
    }
    return out;
}

/// Name of an IDX type code, or an empty view for a code the format does not define.
inline std::string_view idx_type_name(std::uint8_t code) noexcept {
    switch (code) {
        case 0x08: return "unsigned byte";
        case 0x09: return "signed byte";
        case 0x0B: return "short";
        case 0x0C: return "int";
        case 0x0D: return "float";
        case 0x0E: return "double";
        default: return {};
    }
}

/// "file not found", plus how to get it when it should come from a Debian dataset package.
inline std::string missing_file_problem(std::filesystem::path const& file) {
    std::string problem = "file not found";
    auto const text = file.lexically_normal().generic_string();
    constexpr std::string_view fashion = "/usr/share/datasets/fashion-mnist/";
    constexpr std::string_view datasets = "/usr/share/datasets/";
    if (text.starts_with(fashion)) {
        problem += " (install it with `apt-get install dataset-fashion-mnist`)";
    } else if (text.starts_with(datasets)) {
        problem += " (/usr/share/datasets is filled by Debian's dataset-* packages, e.g. "
                   "`apt-get install dataset-fashion-mnist`)";
    }
    return problem;
}

/// A file read through zlib, which decompresses gzip and passes plain files through unchanged.
/// Every zlib error becomes a data_error naming the file.
class idx_source {
public:
    explicit idx_source(std::filesystem::path const& file) : file_{file} {
        std::error_code ec;
        auto const status = std::filesystem::status(file, ec);
        if (!std::filesystem::exists(status)) {
            throw data_error{file, missing_file_problem(file)};
        }
        if (!std::filesystem::is_regular_file(status)) {
            throw data_error{file, "not a regular file"};
        }
        errno = 0;
#ifdef _WIN32
        handle_.reset(gzopen_w(file.c_str(), "rb"));
#else
        handle_.reset(gzopen(file.c_str(), "rb"));
#endif
        if (!handle_) {
            // errno is 0 when zlib itself ran out of memory rather than open() failing.
            throw data_error{file, "cannot open: " + (errno != 0 ? std::generic_category().message(errno)
                                                                 : std::string{"out of memory"})};
        }
        // A larger buffer than zlib's 8 KiB default: fewer read() calls on a 26 MB file.
        gzbuffer(handle_.get(), 1U << 17);

        // Our own look at the magic rather than zlib's: for a plain file the size of the data is
        // then known up front, so truncation is reported before anything is allocated.
        std::array<char, 2> magic{};
        std::ifstream in{file, std::ios::binary};
        gzip_ = in.read(magic.data(), 2) && static_cast<unsigned char>(magic[0]) == 0x1F &&
                static_cast<unsigned char>(magic[1]) == 0x8B;
        if (!gzip_) {
            plain_size_ = std::filesystem::file_size(file, ec);
            if (ec) {
                throw data_error{file, "cannot determine size: " + ec.message()};
            }
        }
    }

    /// Whether the file starts with the gzip magic bytes 1f 8b.
    [[nodiscard]] bool gzip() const noexcept { return gzip_; }

    /// Size on disk of a plain file (meaningless for gzip).
    [[nodiscard]] std::uintmax_t plain_size() const noexcept { return plain_size_; }

    /// Reads up to @p size bytes, fewer only at the end of the data.
    std::size_t read(void* out, std::size_t size) {
        auto* bytes = static_cast<unsigned char*>(out);
        std::size_t done = 0;
        while (done < size) {
            auto const want = static_cast<unsigned>(std::min(size - done, idx_max_read));
            int const got = gzread(handle_.get(), bytes + done, want);
            check();
            if (got <= 0) {
                break;
            }
            done += static_cast<std::size_t>(got);
        }
        return done;
    }

    /// Counts (and discards) what is left, to report trailing garbage by its size.
    std::uintmax_t skip_rest() {
        std::array<unsigned char, 1U << 16> sink{};
        std::uintmax_t total = 0;
        for (std::size_t got; (got = read(sink.data(), sink.size())) != 0;) {
            total += got;
        }
        return total;
    }

private:
    void check() {
        int code = Z_OK;
        char const* message = gzerror(handle_.get(), &code);
        if (code == Z_OK) {
            return;
        }
        std::string detail = message != nullptr ? message : "unknown zlib error";
        // zlib prefixes its message with the path, which our own prefix already gives.
        if (auto const path_prefix = file_.string() + ": "; detail.starts_with(path_prefix)) {
            detail.erase(0, path_prefix.size());
        }
        if (code == Z_BUF_ERROR) {
            // zlib's "unexpected end of file": the compressed stream stops mid-way.
            throw data_error{file_, "truncated gzip stream: " + detail};
        }
        if (code == Z_ERRNO) {
            throw data_error{file_, "read error: " + std::generic_category().message(errno)};
        }
        throw data_error{file_, "corrupt gzip stream: " + detail};
    }

    std::filesystem::path file_;
    gz_handle handle_;
    bool gzip_ = false;
    std::uintmax_t plain_size_ = 0;
};

} // namespace detail

/// @brief Reads an IDX file of unsigned bytes, gzip-compressed or not.
///
/// Compression is recognised by the gzip magic bytes `1f 8b`, never by the file name.
/// @throws data_error naming the file and the problem when the file is missing or unreadable, is
///         not IDX, holds another element type than unsigned byte, has zero dimensions, declares
///         more than 2^31 elements (or, with a size of 0, other sizes whose product is more), is
///         truncated (header or data), has bytes after the data, or is a corrupt gzip stream.
///         Memory is only allocated for data that is actually present.
[[nodiscard]] inline idx_array read_idx(std::filesystem::path const& file) {
    detail::idx_source source{file};

    std::array<std::uint8_t, 4> magic{};
    if (auto got = source.read(magic.data(), magic.size()); got < magic.size()) {
        throw data_error{file, "truncated header: expected 4 bytes of magic number, got " + std::to_string(got)};
    }
    std::uint32_t const magic_value = (std::uint32_t{magic[0]} << 24) | (std::uint32_t{magic[1]} << 16) |
                                      (std::uint32_t{magic[2]} << 8) | std::uint32_t{magic[3]};
    if (magic[0] != 0 || magic[1] != 0) {
        throw data_error{file, "not an IDX file: bad magic number " + detail::hex(magic_value, 8) +
                                   " (expected 0x0000TTDD)"};
    }
    auto const type_name = detail::idx_type_name(magic[2]);
    if (type_name.empty()) {
        throw data_error{file, "not an IDX file: unsupported type code " + detail::hex(magic[2], 2)};
    }
    if (magic[2] != 0x08) {
        throw data_error{file, "unsupported type code " + detail::hex(magic[2], 2) + " (" +
                                   std::string{type_name} + "): only 0x08 (unsigned byte) is supported"};
    }
    std::size_t const rank = magic[3];
    if (rank == 0) {
        throw data_error{file, "bad rank: the header declares 0 dimensions"};
    }

    std::vector<std::uint8_t> sizes(4 * rank);
    if (auto got = source.read(sizes.data(), sizes.size()); got < sizes.size()) {
        throw data_error{file, "truncated header: expected " + std::to_string(sizes.size()) +
                                   " bytes of dimension sizes, got " + std::to_string(got)};
    }
    idx_array result;
    result.shape.resize(rank);
    for (std::size_t d = 0; d < rank; ++d) {
        auto const* s = &sizes[4 * d];
        result.shape[d] = (std::size_t{s[0]} << 24) | (std::size_t{s[1]} << 16) | (std::size_t{s[2]} << 8) | s[3];
    }
    // The limit holds for the product of the sizes other than 0 too: an empty array still has
    // strides, the products of its trailing sizes, and [0, 2^32 - 1, 2^32 - 1] would overflow
    // them (read_idx_images' xtensor computes them in a signed type).
    std::size_t nonzero = 1;
    bool const empty = std::find(result.shape.begin(), result.shape.end(), 0) != result.shape.end();
    for (auto size : result.shape) {
        // Dividing instead of multiplying first: the product of up to 255 sizes of up to
        // 2^32 - 1 would overflow long before the comparison.
        if (size != 0 && nonzero > detail::idx_max_elements / size) {
            throw data_error{file, "absurd size: " + detail::shape_string(result.shape) +
                                       (empty ? ": the sizes other than 0 multiply to more than the limit of 2^31"
                                              : " elements exceeds the limit of 2^31 elements")};
        }
        nonzero *= size == 0 ? 1 : size;
    }
    std::size_t const count = empty ? 0 : nonzero;
    std::size_t const header_size = 4 + sizes.size();

    if (!source.gzip()) {
        // Plain file: compare with its size before allocating anything.
        auto const available = source.plain_size() - header_size;
        if (available < count) {
            throw data_error{file, "truncated: expected " + std::to_string(count) + " bytes of data (" +
                                       detail::shape_string(result.shape) + "), got " + std::to_string(available)};
        }
        if (available > count) {
            throw data_error{file, "trailing garbage: " + std::to_string(available - count) +
                                       " bytes after the " + std::to_string(count) + " bytes of data (" +
                                       detail::shape_string(result.shape) + ")"};
        }
    }

    std::size_t got = 0;
    while (got < count) {
        // Grow geometrically from a small chunk: a gzip header may lie about the size.
        auto const next = std::min(count, std::max(detail::idx_gzip_chunk, 2 * result.data.size()));
        result.data.resize(source.gzip() ? next : count);
        auto const n = source.read(result.data.data() + got, result.data.size() - got);
        got += n;
        if (n == 0) {
            break;
        }
    }
    if (got < count) {
        throw data_error{file, "truncated: expected " + std::to_string(count) + " bytes of data (" +
                                   detail::shape_string(result.shape) + "), got " + std::to_string(got)};
    }
    // Also reads a gzip stream to its end, where zlib verifies the CRC and length.
    if (auto extra = source.skip_rest(); extra != 0) {
        throw data_error{file, "trailing garbage: " + std::to_string(extra) + " bytes after the " +
                                   std::to_string(count) + " bytes of data (" + detail::shape_string(result.shape) +
                                   ")"};
    }
    return result;
}

/// @brief Reads an IDX file of images: rank 3, `count x rows x cols` unsigned bytes.
/// @throws data_error as read_idx, and for a rank other than 3.
[[nodiscard]] inline xt::xtensor<std::uint8_t, 3> read_idx_images(std::filesystem::path const& file) {
    auto array = read_idx(file);
    if (array.shape.size() != 3) {
        throw data_error{file, "bad rank: expected 3 dimensions (images x rows x cols), got " +
                                   std::to_string(array.shape.size()) + " (" + detail::shape_string(array.shape) +
                                   ")"};
    }
    auto images = xt::xtensor<std::uint8_t, 3>::from_shape({array.shape[0], array.shape[1], array.shape[2]});
    std::copy(array.data.begin(), array.data.end(), images.data());
    return images;
}

/// @brief Reads an IDX file of labels: rank 1, one unsigned byte per example.
/// @throws data_error as read_idx, and for a rank other than 1.
[[nodiscard]] inline xt::xtensor<std::uint8_t, 1> read_idx_labels(std::filesystem::path const& file) {
    auto array = read_idx(file);
    if (array.shape.size() != 1) {
        throw data_error{file, "bad rank: expected 1 dimension (labels), got " + std::to_string(array.shape.size()) +
                                   " (" + detail::shape_string(array.shape) + ")"};
    }
    auto labels = xt::xtensor<std::uint8_t, 1>::from_shape({array.shape[0]});
    std::copy(array.data.begin(), array.data.end(), labels.data());
    return labels;
}

} // namespace lowbit::data
