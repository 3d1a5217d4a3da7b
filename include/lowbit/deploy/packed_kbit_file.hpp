// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The packed k-bit MLP file: save_packed / load_packed_kbit write and read a deploy::packed_kbit_mlp
/// (k-bit PACT activations, deploy/packed_kbit_mlp.hpp) as a lowbit archive (io/archive.hpp: magic
/// `LOWBITCK`, format version 2, little-endian, CRC-32 at the end, saved atomically), with the metadata
/// `format = lowbit-packed-kbit-mlp` and `packed_version = 1`. It is the third kind of packed file beside the
/// MLP and CNN files, which are unchanged; packed_kind() tells the three apart and each loader names the
/// right one for a file of another kind.
///
/// Metadata: `layers`, `inputs`, `classes`, per layer i `layer<i>.bits` (weights: 1 binary, 2..8 odd levels)
/// and, for every layer but the last, `layer<i>.act_bits` (the PACT bit width k of its output codes: 2^k - 1
/// thresholds per channel). Entries (docs/formats.md has the full table):
///
/// | entry               | type    | shape                 | when                                          |
/// |---------------------|---------|-----------------------|-----------------------------------------------|
/// | `input.map`         | float32 | [2]                   | scale, offset                                 |
/// | `layer<i>.signs`    | uint64  | [out, ceil(in / 64)]  | binary weights                                |
/// | `layer<i>.codes`    | int8    | [out, in]             | odd-level weights                             |
/// | `layer<i>.threshold`| int32   | [out, 2^k - 1]        | every layer but the last, per channel ascending |
/// | `layer<i>.negate`   | uint8   | [out]                 | every layer but the last: 1 = thresholds on -v |
/// | `layer<i>.scale`    | uint64  | [out]                 | last layer: the float64 scales' IEEE-754 bits  |
/// | `layer<i>.bias`     | float32 | [out]                 | last layer                                    |
///
/// The logits layer's scales are doubles (one rounding from v to the logit), and the archive holds no float64
/// entries, so they are stored as their bit patterns: the loaded model's logits are then the saved model's
/// bit for bit. As for the other kinds, the kernels' packed panels are rebuilt on loading.
///
/// @code
/// lowbit::deploy::save_packed("pact.lbpk", packed_kbit);
/// lowbit::deploy::packed_kbit_mlp const again = lowbit::deploy::load_packed_kbit("pact.lbpk");  // io::io_error
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/packed_file.hpp>
#include <lowbit/deploy/packed_kbit_dense.hpp>
#include <lowbit/deploy/packed_kbit_mlp.hpp>
#include <lowbit/deploy/packed_kind.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief The `packed_version` of packed k-bit MLP files this lowbit writes and reads.
inline constexpr std::uint32_t packed_kbit_version = 1;

namespace detail {
/// The code rules @p t of @p channels channels as the entries `<p>threshold` [rows..., channels, 2^k - 1] and
/// `<p>negate` [rows..., channels] with `<p>act_bits` = k; several sets (a convolution's padding classes) are
/// stacked along a leading dimension.
inline void add_level_thresholds(io::archive& a, std::string const& p, std::string const& name,
                                 std::span<level_thresholds const> sets, bool stacked)
{
    level_thresholds const& t0 = sets.front();
    int const k = std::bit_width(static_cast<unsigned>(t0.levels));
    std::size_t const channels = t0.size(), levels = static_cast<std::size_t>(t0.levels);
    if (t0.levels != (1 << k) - 1 || k > 8)
        throw invalid_input("lowbit::deploy::save_packed: " + name + " has " + std::to_string(t0.levels) +
                            " levels, not 2^k - 1 for a k of 1..8");
    a.meta()[p + "act_bits"] = std::to_string(k);
    std::vector<std::int32_t> threshold;
    std::vector<std::uint8_t> negate;
    for (level_thresholds const& t : sets) {
        threshold.insert(threshold.end(), t.threshold.begin(), t.threshold.end());
        negate.insert(negate.end(), t.negate.begin(), t.negate.end());
    }
    if (stacked) {
        a.add(p + "threshold", {sets.size(), channels, levels}, threshold);
        a.add(p + "negate", {sets.size(), channels}, negate);
    } else {
        a.add(p + "threshold", {channels, levels}, threshold);
        a.add(p + "negate", {channels}, negate);
    }
}

/// What add_level_thresholds wrote for @p channels channels: @p sets sets when stacked, else one. Throws
/// invalid_input for act_bits 0, a negate flag other than 0 / 1, or thresholds that do not ascend.
inline std::vector<level_thresholds> read_level_thresholds(io::archive const& a, std::string const& p,
                                                           std::string const& name, std::size_t channels,
                                                           std::size_t sets, bool stacked)
{
    std::size_t const k = meta_number(a, p + "act_bits", 8);
    if (k == 0) throw invalid_input("metadata '" + p + "act_bits' is 0; PACT codes have 1 to 8 bits");
    auto const levels = static_cast<std::size_t>((1 << k) - 1);
    std::vector<std::int32_t> const threshold = a.integers<std::int32_t>(
        p + "threshold", stacked ? std::vector<std::size_t>{sets, channels, levels}
                                 : std::vector<std::size_t>{channels, levels});
    std::vector<std::uint8_t> const negate = a.integers<std::uint8_t>(
        p + "negate", stacked ? std::vector<std::size_t>{sets, channels} : std::vector<std::size_t>{channels});
    std::vector<level_thresholds> out(sets);
    for (std::size_t c = 0; c < sets; ++c) {
        level_thresholds& t = out[c];
        t.levels = static_cast<int>(levels);
        t.threshold.assign(threshold.begin() + static_cast<std::ptrdiff_t>(c * channels * levels),
                           threshold.begin() + static_cast<std::ptrdiff_t>((c + 1) * channels * levels));
        t.negate.assign(negate.begin() + static_cast<std::ptrdiff_t>(c * channels),
                        negate.begin() + static_cast<std::ptrdiff_t>((c + 1) * channels));
        for (std::size_t j = 0; j < channels; ++j) {
            if (t.negate[j] > 1)
                throw invalid_input("channel " + std::to_string(j) + " of " + name + " has negate flag " +
                                    std::to_string(t.negate[j]) + ", not 0 or 1");
            // The code counts passed thresholds, which means a level only if they ascend.
            std::int32_t const* r = t.threshold.data() + j * levels;
            for (std::size_t l = 1; l < levels; ++l)
                if (r[l] < r[l - 1])
                    throw invalid_input("the thresholds of channel " + std::to_string(j) + " of " + name +
                                        " do not ascend");
        }
    }
    return out;
}

/// A k-bit dense layer under prefix @p p: its weights, then its code rules or its logits' scales (float64
/// IEEE-754 bits) and bias.
inline void add_kbit_dense(io::archive& a, std::string const& p, std::string const& name, packed_kbit_dense const& l)
{
    packed_weights const& w = l.weights();
    add_weights(a, p, w);
    if (l.logits()) {
        std::vector<std::uint64_t> scale(l.scale().size());
        for (std::size_t j = 0; j < scale.size(); ++j) scale[j] = std::bit_cast<std::uint64_t>(l.scale()[j]);
        a.add(p + "scale", {w.out}, scale);
        a.add(p + "bias", {w.out}, std::vector<float>(l.bias().begin(), l.bias().end()));
    } else {
        add_level_thresholds(a, p, name, std::span<level_thresholds const>(&l.thresholds(), 1), false);
    }
}

/// What add_kbit_dense wrote under prefix @p p, reading @p in features; with @p classes, the logits layer,
/// which must write that many.
inline packed_kbit_dense read_kbit_dense(io::archive const& a, std::string const& p, std::string const& name,
                                         std::size_t in, std::optional<std::size_t> classes)
{
    packed_weights w = read_weights(a, p, in);
    std::vector<std::size_t> const outs{w.out};
    if (classes && w.out != *classes)
        throw invalid_input("the last layer writes " + std::to_string(w.out) + " logits, metadata 'classes' is " +
                            std::to_string(*classes));
    if (!classes) {
        std::vector<level_thresholds> t = read_level_thresholds(a, p, name, w.out, 1, false);
        return packed_kbit_dense(std::move(w), std::move(t.front()));
    }
    std::vector<std::uint64_t> const bits = a.integers<std::uint64_t>(p + "scale", outs);
    std::vector<double> scale(bits.size());
    for (std::size_t j = 0; j < bits.size(); ++j) {
        scale[j] = std::bit_cast<double>(bits[j]);
        if (!std::isfinite(scale[j])) throw invalid_input("the scale of logit " + std::to_string(j) + " is not finite");
    }
    std::span<float const> const b = a.values(p + "bias", outs);
    return packed_kbit_dense(std::move(w), std::move(scale), std::vector<float>(b.begin(), b.end()));
}
} // namespace detail

/// @brief @p m as an archive (what save_packed writes).
/// @throws invalid_input for a hidden layer whose level count is not 2^k - 1 (k = 1..8), which the file's
/// `act_bits` cannot express (deploy::compile never makes one).
inline io::archive to_archive(packed_kbit_mlp const& m)
{
    io::archive a;
    a.meta()["format"] = std::string(packed_kbit_format);
    a.meta()["packed_version"] = std::to_string(packed_kbit_version);
    a.meta()["layers"] = std::to_string(m.layers().size());
    a.meta()["inputs"] = std::to_string(m.inputs());
    a.meta()["classes"] = std::to_string(m.classes());
    a.add("input.map", {2}, {m.input().scale, m.input().offset});
    for (std::size_t i = 0; i < m.layers().size(); ++i)
        detail::add_kbit_dense(a, "layer" + std::to_string(i) + ".", "layer " + std::to_string(i), m.layers()[i]);
    return a;
}

/// @brief The packed k-bit MLP held by @p a (as load_archive read it).
/// @throws io::io_error naming a.source() when it is not a packed model ("not a packed lowbit model: ..."), a
/// packed MLP or CNN (naming their loaders), of another packed_version, or inconsistent: a missing entry or
/// metadata, a shape or type mismatch against the metadata, bits out of range, a negate flag other than 0 / 1,
/// thresholds not ascending within a channel, a scale that is not finite, layers that do not chain.
inline packed_kbit_mlp kbit_from_archive(io::archive const& a)
{
    detail::expect_kind(a, packed_model_kind::kbit_mlp);
    std::size_t const version = detail::meta_number(a, "packed_version", 1000000);
    if (version != packed_kbit_version)
        throw io::io_error{a.source(), "unsupported packed k-bit MLP version " + std::to_string(version) +
                                           ", and this lowbit reads packed k-bit MLP version " +
                                           std::to_string(packed_kbit_version)};
    std::size_t const count = detail::meta_number(a, "layers", 1024);
    std::size_t const inputs = detail::meta_number(a, "inputs", std::size_t{1} << 32);
    std::size_t const classes = detail::meta_number(a, "classes", std::size_t{1} << 32);
    std::span<float const> const map = a.values("input.map", std::vector<std::size_t>{2});
    if (count < 2)
        throw io::io_error{a.source(), "inconsistent packed model: metadata 'layers' is " + std::to_string(count) +
                                           ", and a packed k-bit MLP has at least two layers"};
    std::vector<packed_kbit_dense> layers;
    std::size_t in = inputs;
    try {
        for (std::size_t i = 0; i < count; ++i) {
            std::string const p = "layer" + std::to_string(i) + ".", name = "layer " + std::to_string(i);
            layers.push_back(detail::read_kbit_dense(a, p, name, in, i + 1 == count ? std::optional(classes) : std::nullopt));
            in = layers.back().out();
        }
        return packed_kbit_mlp(input_map{.scale = map[0], .offset = map[1]}, std::move(layers));
    } catch (invalid_input const& e) {  // sizes or values the layers refuse: the file is inconsistent
        throw io::io_error{a.source(), std::string("inconsistent packed model: ") + e.what()};
    }
}

/// @brief Writes @p m to @p file (atomically: an existing file is replaced only once the new one is written).
/// @throws io::io_error naming @p file when it cannot be written; invalid_input as to_archive.
inline void save_packed(std::filesystem::path const& file, packed_kbit_mlp const& m)
{
    io::save_archive(file, to_archive(m));
}

/// @brief Reads a packed k-bit MLP written by save_packed.
/// @throws io::io_error naming @p file: every error of io::load_archive (missing, not a lowbit file,
/// unsupported format version, truncated, checksum mismatch), and those of kbit_from_archive.
inline packed_kbit_mlp load_packed_kbit(std::filesystem::path const& file)
{
    return kbit_from_archive(io::load_archive(file));
}

/// @brief The size in bytes of @p m's file.
inline std::size_t packed_bytes(packed_kbit_mlp const& m) { return io::archive_bytes(to_archive(m)).size(); }

} // namespace lowbit::deploy
