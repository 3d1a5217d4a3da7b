// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The packed CNN file: save_packed / load_packed_cnn write and read a deploy::packed_cnn as a lowbit
/// archive (io/archive.hpp: magic `LOWBITCK`, format version 2, little-endian, CRC-32 at the end, saved
/// atomically), with the metadata `format = lowbit-packed-cnn` and `packed_version = 1`; packed_kind() tells
/// a packed MLP file from a packed CNN file. The `format` value is the model kind: MLP files are unchanged
/// (`lowbit-packed-mlp`, packed version 1), and each loader names the other when given the wrong kind.
///
/// Metadata: `channels`, `height`, `width` (the input images), `classes`, `convs`, `dense`, and per
/// convolution i `conv<i>.bits`, `.kernel`, `.stride`, `.padding`, `.pool_kernel`, `.pool_stride` (0 0: no
/// pooling after it), per dense layer i `dense<i>.bits`. Entries (docs/formats.md has the full table):
///
/// | entry               | type    | shape                         | when                                     |
/// |---------------------|---------|-------------------------------|------------------------------------------|
/// | `input.map`         | float32 | [2]                           | scale, offset                            |
/// | `conv<i>.signs`     | uint64  | [filters, ceil(k*k*C / 64)]   | binary weights, patch order (ky, kx, c)  |
/// | `conv<i>.codes`     | int8    | [filters, k*k*C]              | odd-level weights, same order            |
/// | `conv<i>.threshold` | int32   | [classes, filters]            | classes: conv 0's padding classes, or 1  |
/// | `conv<i>.flip`      | uint64  | [classes, ceil(filters / 64)] | every convolution                        |
/// | `dense<i>.*`        |         |                               | the MLP's `layer<i>.*`; dense 0 reads (y, x, c) |
///
/// @code
/// lowbit::deploy::save_packed("cnn.lbpk", packed_cnn);
/// if (lowbit::deploy::packed_kind(lowbit::io::load_archive("cnn.lbpk")) == lowbit::deploy::packed_model_kind::cnn)
///     auto const again = lowbit::deploy::load_packed_cnn("cnn.lbpk");   // throws io::io_error
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/packed_cnn.hpp>
#include <lowbit/deploy/packed_conv2d.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/packed_file.hpp>
#include <lowbit/deploy/sign_max_pool.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/kernels/binary_conv2d.hpp>
#include <lowbit/kernels/bit_matrix.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief The `format` metadata of a packed CNN file.
inline constexpr std::string_view packed_cnn_format = "lowbit-packed-cnn";
/// @brief The `packed_version` of packed CNN files this lowbit writes and reads.
inline constexpr std::uint32_t packed_cnn_version = 1;

/// @brief The kinds of packed model files: packed_mlp (`lowbit-packed-mlp`), packed_cnn (`lowbit-packed-cnn`),
/// packed_kbit_mlp (`lowbit-packed-kbit-mlp`, deploy/packed_kbit_file.hpp).
enum class packed_model_kind : std::uint8_t { mlp, cnn, kbit_mlp };

/// @brief The kind of the packed model held by @p a, from its `format` metadata.
/// @throws io::io_error naming a.source() when it is not a packed model.
inline packed_model_kind packed_kind(io::archive const& a)
{
    auto const format = a.meta().find("format");
    if (format != a.meta().end() && format->second == packed_cnn_format) return packed_model_kind::cnn;
    if (format != a.meta().end() && format->second == packed_format) return packed_model_kind::mlp;
    if (format != a.meta().end() && format->second == packed_kbit_format) return packed_model_kind::kbit_mlp;
    std::string const found = format == a.meta().end() ? std::string("missing") : "'" + format->second + "'";
    throw io::io_error{a.source(), "not a packed lowbit model: metadata 'format' is " + found +
                                       ", expected '" + std::string(packed_format) + "', '" +
                                       std::string(packed_cnn_format) + "' or '" + std::string(packed_kbit_format) +
                                       "' (a training checkpoint must be compiled first: lowbit-infer --checkpoint)"};
}

namespace detail {
/// Reads the weights of @p in inputs under prefix @p p (`<p>signs` or `<p>codes`, by `<p>bits`).
inline packed_weights read_weights(io::archive const& a, std::string const& p, std::size_t in)
{
    packed_weights w;
    w.bits = static_cast<int>(meta_number(a, p + "bits", 8));
    w.in = in;
    if (w.bits == 1) {
        std::vector<std::size_t> const& s = entry_shape(a, p + "signs");
        w.out = s.empty() ? 0 : s[0];
        w.signs = a.integers<std::uint64_t>(p + "signs", std::vector<std::size_t>{w.out, w.words()});
    } else {
        std::vector<std::size_t> const& s = entry_shape(a, p + "codes");
        w.out = s.empty() ? 0 : s[0];
        w.codes = a.integers<std::int8_t>(p + "codes", std::vector<std::size_t>{w.out, w.in});
    }
    return w;
}
} // namespace detail

/// @brief @p m as an archive (what save_packed writes).
inline io::archive to_archive(packed_cnn const& m)
{
    io::archive a;
    a.meta()["format"] = std::string(packed_cnn_format);
    a.meta()["packed_version"] = std::to_string(packed_cnn_version);
    a.meta()["channels"] = std::to_string(m.channels());
    a.meta()["height"] = std::to_string(m.height());
    a.meta()["width"] = std::to_string(m.width());
    a.meta()["classes"] = std::to_string(m.classes());
    a.meta()["convs"] = std::to_string(m.convs().size());
    a.meta()["dense"] = std::to_string(m.dense().size());
    a.add("input.map", {2}, {m.input().scale, m.input().offset});
    for (std::size_t i = 0; i < m.convs().size(); ++i) {
        packed_conv2d const& c = m.convs()[i];
        kernels::binary_conv2d_shape const& s = c.shape();
        packed_weights const& w = c.weights();
        std::string const p = "conv" + std::to_string(i) + ".";
        a.meta()[p + "bits"] = std::to_string(w.bits);
        a.meta()[p + "kernel"] = std::to_string(s.kernel);
        a.meta()[p + "stride"] = std::to_string(s.stride);
        a.meta()[p + "padding"] = std::to_string(s.padding);
        a.meta()[p + "pool_kernel"] = std::to_string(m.pools()[i].kernel);
        a.meta()[p + "pool_stride"] = std::to_string(m.pools()[i].stride);
        if (w.binary())
            a.add(p + "signs", {w.out, w.words()}, w.signs);
        else
            a.add(p + "codes", {w.out, w.in}, w.codes);
        std::size_t const classes = c.thresholds().size(), words = kernels::words_for_bits(w.out);
        std::vector<std::int32_t> threshold;
        std::vector<std::uint64_t> flip;
        for (sign_thresholds const& t : c.thresholds()) {
            threshold.insert(threshold.end(), t.threshold.begin(), t.threshold.end());
            flip.insert(flip.end(), t.flip.begin(), t.flip.end());
        }
        a.add(p + "threshold", {classes, w.out}, threshold);
        a.add(p + "flip", {classes, words}, flip);
    }
    for (std::size_t i = 0; i < m.dense().size(); ++i)
        detail::add_dense(a, "dense" + std::to_string(i) + ".", m.dense()[i]);
    return a;
}

/// @brief The packed CNN held by @p a (as load_archive read it).
/// @throws io::io_error naming a.source() when it is not a packed model ("not a packed lowbit model: ..."), a
/// packed MLP ("... load it with load_packed"), of another packed_version, or inconsistent (a missing entry, a
/// shape or type mismatch, layers that do not chain).
inline packed_cnn cnn_from_archive(io::archive const& a)
{
    switch (packed_kind(a)) {
    case packed_model_kind::cnn: break;
    case packed_model_kind::mlp:
        throw io::io_error{a.source(), "this is a packed MLP ('" + std::string(packed_format) +
                                           "'), not a packed CNN: load it with deploy::load_packed"};
    case packed_model_kind::kbit_mlp:
        throw io::io_error{a.source(), "this is a packed k-bit MLP ('" + std::string(packed_kbit_format) +
                                           "'), not a packed CNN: load it with deploy::load_packed_kbit "
                                           "(deploy/packed_kbit_file.hpp)"};
    }
    std::size_t const version = detail::meta_number(a, "packed_version", 1000000);
    if (version != packed_cnn_version)
        throw io::io_error{a.source(), "unsupported packed CNN version " + std::to_string(version) +
                                           ", and this lowbit reads packed CNN version " +
                                           std::to_string(packed_cnn_version)};
    constexpr std::size_t big = std::size_t{1} << 32;
    std::size_t const count = detail::meta_number(a, "convs", 64), dense_count = detail::meta_number(a, "dense", 64);
    std::size_t channels = detail::meta_number(a, "channels", big), height = detail::meta_number(a, "height", big);
    std::size_t width = detail::meta_number(a, "width", big);
    std::span<float const> const map = a.values("input.map", std::vector<std::size_t>{2});
    try {
        std::vector<packed_conv2d> convs;
        std::vector<pool_window> pools;
        for (std::size_t i = 0; i < count; ++i) {
            std::string const p = "conv" + std::to_string(i) + ".";
            kernels::binary_conv2d_shape s{.channels = channels, .height = height, .width = width};
            s.kernel = detail::meta_number(a, p + "kernel", 64);
            s.stride = detail::meta_number(a, p + "stride", 64);
            s.padding = detail::meta_number(a, p + "padding", 64);
            pool_window const pool{.kernel = detail::meta_number(a, p + "pool_kernel", 64),
                                   .stride = detail::meta_number(a, p + "pool_stride", 64)};
            packed_weights w = detail::read_weights(a, p, s.patch_bits());
            s.filters = w.out;
            std::size_t const words = kernels::words_for_bits(w.out);
            std::vector<std::size_t> const& ts = detail::entry_shape(a, p + "threshold");
            std::size_t const classes = ts.empty() ? 0 : ts[0];
            std::vector<std::int32_t> const threshold =
                a.integers<std::int32_t>(p + "threshold", std::vector<std::size_t>{classes, w.out});
            std::vector<std::uint64_t> const flip =
                a.integers<std::uint64_t>(p + "flip", std::vector<std::size_t>{classes, words});
            std::vector<sign_thresholds> t(classes);
            for (std::size_t c = 0; c < classes; ++c) {
                t[c].threshold.assign(threshold.begin() + static_cast<std::ptrdiff_t>(c * w.out),
                                      threshold.begin() + static_cast<std::ptrdiff_t>((c + 1) * w.out));
                t[c].flip.assign(flip.begin() + static_cast<std::ptrdiff_t>(c * words),
                                 flip.begin() + static_cast<std::ptrdiff_t>((c + 1) * words));
            }
            convs.emplace_back(i == 0 ? layer_input::codes : layer_input::signs, s, std::move(w), std::move(t));
            pools.push_back(pool);
            if (!pool.none() && (pool.stride == 0 || s.out_height() < pool.kernel || s.out_width() < pool.kernel))
                throw invalid_input("the pooling after convolution " + std::to_string(i) +
                                    " has stride 0 or a window larger than its feature map");
            channels = s.filters;
            height = pool.out(s.out_height());
            width = pool.out(s.out_width());
        }
        std::vector<packed_dense> dense;
        std::size_t in = channels * height * width;
        for (std::size_t i = 0; i < dense_count; ++i) {
            std::string const p = "dense" + std::to_string(i) + ".";
            packed_weights w = detail::read_weights(a, p, in);
            std::vector<std::size_t> const outs{w.out};
            if (i + 1 == dense_count) {
                if (w.binary()) {
                    std::span<float const> const s = a.values(p + "scale", outs);
                    w.scale.assign(s.begin(), s.end());
                }
                std::span<float const> const b = a.values(p + "bias", outs);
                dense.emplace_back(layer_input::signs, std::move(w), std::vector<float>(b.begin(), b.end()));
            } else {
                sign_thresholds t{a.integers<std::int32_t>(p + "threshold", outs),
                                  a.integers<std::uint64_t>(p + "flip",
                                                            std::vector<std::size_t>{kernels::words_for_bits(w.out)})};
                dense.emplace_back(layer_input::signs, std::move(w), std::move(t));
            }
            in = dense.back().out();
        }
        return packed_cnn(input_map{.scale = map[0], .offset = map[1]}, std::move(convs), std::move(pools),
                          std::move(dense));
    } catch (invalid_input const& e) {  // sizes or values the layers refuse: the file is inconsistent
        throw io::io_error{a.source(), std::string("inconsistent packed model: ") + e.what()};
    }
}

/// @brief Writes @p m to @p file (atomically: an existing file is replaced only once the new one is written).
/// @throws io::io_error naming @p file when it cannot be written.
inline void save_packed(std::filesystem::path const& file, packed_cnn const& m)
{
    io::save_archive(file, to_archive(m));
}

/// @brief Reads a packed CNN written by save_packed.
/// @throws io::io_error naming @p file: every error of io::load_archive (missing, not a lowbit file,
/// unsupported format version, truncated, checksum mismatch), and those of cnn_from_archive.
inline packed_cnn load_packed_cnn(std::filesystem::path const& file)
{
    return cnn_from_archive(io::load_archive(file));
}

/// @brief The size in bytes of @p m's file.
inline std::size_t packed_bytes(packed_cnn const& m) { return io::archive_bytes(to_archive(m)).size(); }

} // namespace lowbit::deploy
