// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The packed k-bit CNN file: save_packed / load_packed_kbit_cnn write and read a deploy::packed_kbit_cnn
/// (k-bit PACT activations, deploy/packed_kbit_cnn.hpp) as a lowbit archive (io/archive.hpp: magic
/// `LOWBITCK`, format version 2, little-endian, CRC-32 at the end, saved atomically), with the metadata
/// `format = lowbit-packed-kbit-cnn` and `packed_version = 1`; packed_kind() tells it from the other kinds
/// (deploy/packed_kind.hpp).
///
/// Metadata: as the packed CNN file -- `channels`, `height`, `width`, `classes`, `convs`, `dense`, per
/// convolution i `conv<i>.bits`, `.kernel`, `.stride`, `.padding`, `.pool_kernel`, `.pool_stride` -- plus
/// `conv<i>.act_bits` (the PACT bit width k of its output codes); the dense layers are the k-bit MLP file's
/// layers under `dense<i>.`. Entries (docs/formats.md has the full table):
///
/// | entry               | type    | shape                         | when                                      |
/// |---------------------|---------|-------------------------------|-------------------------------------------|
/// | `input.map`         | float32 | [2]                           | scale, offset                             |
/// | `conv<i>.signs`     | uint64  | [filters, ceil(k*k*C / 64)]   | binary weights, patch order (ky, kx, c)   |
/// | `conv<i>.codes`     | int8    | [filters, k*k*C]              | odd-level weights, same order             |
/// | `conv<i>.threshold` | int32   | [classes, filters, 2^k - 1]   | classes: conv 0's padding classes, or 1   |
/// | `conv<i>.negate`    | uint8   | [classes, filters]            | 1 = thresholds on -v                      |
/// | `dense<i>.*`        |         |                               | the k-bit MLP's `layer<i>.*`; dense 0 reads (y, x, c) |
///
/// @code
/// lowbit::deploy::save_packed("pact-cnn.lbpk", packed_kbit_cnn);
/// lowbit::deploy::packed_kbit_cnn const again = lowbit::deploy::load_packed_kbit_cnn("pact-cnn.lbpk");
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_cnn_file.hpp>
#include <lowbit/deploy/packed_file.hpp>
#include <lowbit/deploy/packed_kbit_cnn.hpp>
#include <lowbit/deploy/packed_kbit_conv2d.hpp>
#include <lowbit/deploy/packed_kbit_dense.hpp>
#include <lowbit/deploy/packed_kbit_file.hpp>
#include <lowbit/deploy/packed_kind.hpp>
#include <lowbit/deploy/pool_window.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief The `packed_version` of packed k-bit CNN files this lowbit writes and reads.
inline constexpr std::uint32_t packed_kbit_cnn_version = 1;

/// @brief @p m as an archive (what save_packed writes).
/// @throws invalid_input for a layer whose level count is not 2^k - 1 (k = 1..8), which the file's `act_bits`
/// cannot express (deploy::compile never makes one).
inline io::archive to_archive(packed_kbit_cnn const& m)
{
    io::archive a;
    detail::add_cnn_header(a, m, packed_kbit_cnn_format, packed_kbit_cnn_version);
    for (std::size_t i = 0; i < m.convs().size(); ++i) {
        packed_kbit_conv2d const& c = m.convs()[i];
        std::string const p = "conv" + std::to_string(i) + ".";
        detail::add_conv(a, p, c.shape(), m.pools()[i], c.weights());
        detail::add_level_thresholds(a, p, "convolution " + std::to_string(i), c.thresholds(), true);
    }
    for (std::size_t i = 0; i < m.dense().size(); ++i)
        detail::add_kbit_dense(a, "dense" + std::to_string(i) + ".", "dense layer " + std::to_string(i), m.dense()[i]);
    return a;
}

/// @brief The packed k-bit CNN held by @p a (as load_archive read it).
/// @throws io::io_error naming a.source() when it is not a packed model ("not a packed lowbit model: ..."), a
/// packed model of another kind (naming its loader), of another packed_version, or inconsistent: a missing
/// entry or metadata, a shape or type mismatch, bits out of range, a negate flag other than 0 / 1, thresholds
/// not ascending within a channel, a scale that is not finite, layers that do not chain.
inline packed_kbit_cnn kbit_cnn_from_archive(io::archive const& a)
{
    detail::expect_kind(a, packed_model_kind::kbit_cnn);
    std::size_t const version = detail::meta_number(a, "packed_version", 1000000);
    if (version != packed_kbit_cnn_version)
        throw io::io_error{a.source(), "unsupported packed k-bit CNN version " + std::to_string(version) +
                                           ", and this lowbit reads packed k-bit CNN version " +
                                           std::to_string(packed_kbit_cnn_version)};
    constexpr std::size_t big = std::size_t{1} << 32;
    std::size_t const count = detail::meta_number(a, "convs", 64), dense_count = detail::meta_number(a, "dense", 64);
    std::size_t channels = detail::meta_number(a, "channels", big);
    std::size_t height = detail::meta_number(a, "height", packed_cnn_max_side);
    std::size_t width = detail::meta_number(a, "width", packed_cnn_max_side);
    std::size_t const classes = detail::meta_number(a, "classes", big);
    std::span<float const> const map = a.values("input.map", std::vector<std::size_t>{2});
    try {
        std::vector<packed_kbit_conv2d> convs;
        std::vector<pool_window> pools;
        std::size_t pixels = 0;
        for (std::size_t i = 0; i < count; ++i) {
            std::string const p = "conv" + std::to_string(i) + ".";
            auto [s, pool, w] = detail::read_conv(a, p, i, channels, height, width, pixels);
            std::vector<std::size_t> const& ts = detail::entry_shape(a, p + "threshold");
            std::size_t const sets = ts.empty() ? 0 : ts[0];
            std::vector<level_thresholds> t =
                detail::read_level_thresholds(a, p, "convolution " + std::to_string(i), w.out, sets, true);
            convs.emplace_back(s, std::move(w), std::move(t));
            pools.push_back(pool);
            channels = s.filters;
            height = pool.out(s.out_height());
            width = pool.out(s.out_width());
        }
        std::vector<packed_kbit_dense> dense;
        std::size_t in = channels * height * width;
        for (std::size_t i = 0; i < dense_count; ++i) {
            dense.push_back(detail::read_kbit_dense(a, "dense" + std::to_string(i) + ".",
                                                    "dense layer " + std::to_string(i), in,
                                                    i + 1 == dense_count ? std::optional(classes) : std::nullopt));
            in = dense.back().out();
        }
        return packed_kbit_cnn(input_map{.scale = map[0], .offset = map[1]}, std::move(convs), std::move(pools),
                               std::move(dense));
    } catch (invalid_input const& e) {  // sizes or values the layers refuse: the file is inconsistent
        throw io::io_error{a.source(), std::string("inconsistent packed model: ") + e.what()};
    }
}

/// @brief Writes @p m to @p file (atomically: an existing file is replaced only once the new one is written).
/// @throws io::io_error naming @p file when it cannot be written; invalid_input as to_archive.
inline void save_packed(std::filesystem::path const& file, packed_kbit_cnn const& m)
{
    io::save_archive(file, to_archive(m));
}

/// @brief Reads a packed k-bit CNN written by save_packed.
/// @throws io::io_error naming @p file: every error of io::load_archive (missing, not a lowbit file,
/// unsupported format version, truncated, checksum mismatch), and those of kbit_cnn_from_archive.
inline packed_kbit_cnn load_packed_kbit_cnn(std::filesystem::path const& file)
{
    return kbit_cnn_from_archive(io::load_archive(file));
}

/// @brief The size in bytes of @p m's file.
inline std::size_t packed_bytes(packed_kbit_cnn const& m) { return io::archive_bytes(to_archive(m)).size(); }

} // namespace lowbit::deploy
