// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The packed CNN file: save_packed / load_packed_cnn write and read a deploy::packed_cnn as a lowbit
/// archive (io/archive.hpp: magic `LOWBITCK`, format version 2, little-endian, CRC-32 at the end, saved
/// atomically), with the metadata `format = lowbit-packed-cnn` and `packed_version = 1`. The `format` value is
/// the model kind (deploy/packed_kind.hpp lists them); each loader names the right one for a file of another
/// kind. The helpers for a CNN's header and convolutions are shared with the k-bit CNN file.
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
#include <lowbit/deploy/detail/code_conv.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/packed_cnn.hpp>
#include <lowbit/deploy/packed_conv2d.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/packed_file.hpp>
#include <lowbit/deploy/packed_kind.hpp>
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

/// @brief The `packed_version` of packed CNN files this lowbit writes and reads.
inline constexpr std::uint32_t packed_cnn_version = 1;

/// @brief The largest `height` and `width` a packed CNN file (either kind) may declare for its input images,
/// and the largest feature map a convolution of it may write. A convolution builds a table entry per output
/// pixel (deploy::padding_classes) as it is constructed, before the dense layers can show that a size is
/// wrong, so the sizes are bounded first. 512 x 512 is above the images packed CNNs run on today (28-224 pixels)
/// and keeps a refusal fast: the tables of a 4096 x 4096 map took seconds to build before the dense layers
/// could refuse it (docs/reliability.md). Lifting it needs O(height + width) tables.
inline constexpr std::size_t packed_cnn_max_side = 512;

/// @brief The most output pixels (one image) of all the convolutions of a packed CNN file together: sixteen
/// feature maps of 512 x 512. A padding of up to 64 lets every convolution
/// write a larger map than it reads, so the side limit alone would not bound the sum over 64 convolutions.
inline constexpr std::size_t packed_cnn_max_pixels = std::size_t{1} << 22;


namespace detail {
/// The metadata every packed CNN file starts with: format, version, the input images, classes, layer counts,
/// and the input map.
template <class Cnn>
void add_cnn_header(io::archive& a, Cnn const& m, std::string_view format, std::uint32_t version)
{
    a.meta()["format"] = std::string(format);
    a.meta()["packed_version"] = std::to_string(version);
    a.meta()["channels"] = std::to_string(m.channels());
    a.meta()["height"] = std::to_string(m.height());
    a.meta()["width"] = std::to_string(m.width());
    a.meta()["classes"] = std::to_string(m.classes());
    a.meta()["convs"] = std::to_string(m.convs().size());
    a.meta()["dense"] = std::to_string(m.dense().size());
    a.add("input.map", {2}, {m.input().scale, m.input().offset});
}

/// A convolution's geometry, its pooling and its weights under prefix @p p (`conv<i>.`).
inline void add_conv(io::archive& a, std::string const& p, kernels::binary_conv2d_shape const& s, pool_window pool,
                     packed_weights const& w)
{
    a.meta()[p + "kernel"] = std::to_string(s.kernel);
    a.meta()[p + "stride"] = std::to_string(s.stride);
    a.meta()[p + "padding"] = std::to_string(s.padding);
    a.meta()[p + "pool_kernel"] = std::to_string(pool.kernel);
    a.meta()[p + "pool_stride"] = std::to_string(pool.stride);
    add_weights(a, p, w);
}

struct conv_entries {
    kernels::binary_conv2d_shape shape{};
    pool_window pool{};
    packed_weights w{};
};

/// What add_conv wrote under prefix @p p for convolution @p index, for an input of @p channels x @p height x
/// @p width; @p pixels: the output pixels of the convolutions before it, to which it adds its own. Throws
/// invalid_input for a geometry the layer refuses (detail::check_conv_geometry: no filters, an input smaller
/// than the kernel, ...), a feature map over packed_cnn_max_side or packed_cnn_max_pixels, and a pooling
/// window that does not fit the feature map.
inline conv_entries read_conv(io::archive const& a, std::string const& p, std::size_t index, std::size_t channels,
                              std::size_t height, std::size_t width, std::size_t& pixels)
{
    conv_entries c;
    c.shape = {.channels = channels, .height = height, .width = width};
    c.shape.kernel = meta_number(a, p + "kernel", 64);
    c.shape.stride = meta_number(a, p + "stride", 64);
    c.shape.padding = meta_number(a, p + "padding", 64);
    c.pool = {.kernel = meta_number(a, p + "pool_kernel", 64), .stride = meta_number(a, p + "pool_stride", 64)};
    c.w = read_weights(a, p, c.shape.patch_bits());
    c.shape.filters = c.w.out;
    // Before the thresholds are read: with filters > 0, their entry's element count bounds the number of sets
    // (a [2^40, 0] entry of 0 filters would otherwise ask for 2^40 empty sets).
    std::string const who = "convolution " + std::to_string(index) + ": ";
    check_conv_geometry(who, c.shape, c.w);
    std::size_t const oh = c.shape.out_height(), ow = c.shape.out_width();
    if (oh > packed_cnn_max_side || ow > packed_cnn_max_side || oh * ow > packed_cnn_max_pixels - pixels)
        throw invalid_input(who + "it writes a " + std::to_string(oh) + "x" + std::to_string(ow) +
                            " feature map, and a packed CNN file's convolutions write at most " +
                            std::to_string(packed_cnn_max_side) + "x" + std::to_string(packed_cnn_max_side) +
                            " each and 2^22 pixels in all");
    pixels += oh * ow;
    if (!c.pool.none() &&
        (c.pool.stride == 0 || c.shape.out_height() < c.pool.kernel || c.shape.out_width() < c.pool.kernel))
        throw invalid_input("the pooling after convolution " + std::to_string(index) +
                            " has stride 0 or a window larger than its feature map");
    return c;
}
} // namespace detail

/// @brief @p m as an archive (what save_packed writes).
inline io::archive to_archive(packed_cnn const& m)
{
    io::archive a;
    detail::add_cnn_header(a, m, packed_cnn_format, packed_cnn_version);
    for (std::size_t i = 0; i < m.convs().size(); ++i) {
        packed_conv2d const& c = m.convs()[i];
        packed_weights const& w = c.weights();
        std::string const p = "conv" + std::to_string(i) + ".";
        detail::add_conv(a, p, c.shape(), m.pools()[i], w);
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
    detail::expect_kind(a, packed_model_kind::cnn);
    std::size_t const version = detail::meta_number(a, "packed_version", 1000000);
    if (version != packed_cnn_version)
        throw io::io_error{a.source(), "unsupported packed CNN version " + std::to_string(version) +
                                           ", and this lowbit reads packed CNN version " +
                                           std::to_string(packed_cnn_version)};
    constexpr std::size_t big = std::size_t{1} << 32;
    std::size_t const count = detail::meta_number(a, "convs", 64), dense_count = detail::meta_number(a, "dense", 64);
    std::size_t channels = detail::meta_number(a, "channels", big);
    std::size_t height = detail::meta_number(a, "height", packed_cnn_max_side);
    std::size_t width = detail::meta_number(a, "width", packed_cnn_max_side);
    std::span<float const> const map = a.values("input.map", std::vector<std::size_t>{2});
    try {
        std::vector<packed_conv2d> convs;
        std::vector<pool_window> pools;
        std::size_t pixels = 0;
        for (std::size_t i = 0; i < count; ++i) {
            std::string const p = "conv" + std::to_string(i) + ".";
            auto [s, pool, w] = detail::read_conv(a, p, i, channels, height, width, pixels);
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
            channels = s.filters;
            height = pool.out(s.out_height());
            width = pool.out(s.out_width());
        }
        std::vector<packed_dense> dense;
        std::size_t in = channels * height * width;
        for (std::size_t i = 0; i < dense_count; ++i) {
            dense.push_back(
                detail::read_dense(a, "dense" + std::to_string(i) + ".", in, layer_input::signs, i + 1 == dense_count));
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
