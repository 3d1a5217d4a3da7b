// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The packed model file: save_packed / load_packed write and read a deploy::packed_mlp as a lowbit
/// archive (io/archive.hpp: magic `LOWBITCK`, format version 2 for its integer entries, little-endian, CRC-32
/// at the end, saved atomically), with the metadata `format = lowbit-packed-mlp` and `packed_version = 1`.
/// (The other kinds of packed file -- a packed CNN, a packed k-bit MLP and a packed k-bit CNN -- and the
/// `format` values that tell them apart are listed in deploy/packed_kind.hpp.)
/// The entries and their layout are in docs/deploy.md:
///
/// | entry                        | type    | shape                   | when                              |
/// |------------------------------|---------|-------------------------|-----------------------------------|
/// | `input.map`                  | float32 | [2]                     | scale, offset                     |
/// | `layer<i>.signs`             | uint64  | [out, ceil(in / 64)]    | binary weights                    |
/// | `layer<i>.codes`             | int8    | [out, in]               | odd-level weights (`layer<i>.bits`) |
/// | `layer<i>.threshold`, `.flip`| int32, uint64 | [out], [ceil(out / 64)] | every layer but the last      |
/// | `layer<i>.scale`             | float32 | [out]                   | last layer: binary weights, integer levels; odd levels whose unit is not 1 / (2^bits - 1) |
/// | `layer<i>.levels` (metadata) | string  |                         | `integer`: codes are mid-tread levels c, not 2c + 1 |
/// | `layer<i>.bias`              | float32 | [out]                   | last layer                        |
///
/// The kernels' packed panels are rebuilt on loading: the file holds plain row-major matrices, so it does not
/// depend on the kernels' internal layout or on the instruction set.
///
/// @code
/// lowbit::deploy::save_packed("bnn.lbpk", packed);
/// lowbit::deploy::packed_mlp const again = lowbit::deploy::load_packed("bnn.lbpk");   // throws io::io_error
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/packed_kind.hpp>
#include <lowbit/deploy/packed_mlp.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/kernels/bit_matrix.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief The `packed_version` metadata this lowbit writes and reads: the entry names and meanings above. A
/// change of them is a new version; the container's own version (io::archive_version) is separate.
inline constexpr std::uint32_t packed_version = 1;

namespace detail {
/// The weights @p w under prefix @p p: `<p>bits`, and `<p>signs` [out, ceil(in / 64)] (binary) or `<p>codes`
/// [out, in] (levels; `<p>levels = integer` for the integer levels of a mid-tread grid, absent for odd levels).
inline void add_weights(io::archive& a, std::string const& p, packed_weights const& w)
{
    a.meta()[p + "bits"] = std::to_string(w.bits);
    if (!w.binary() && !w.odd) a.meta()[p + "levels"] = "integer";
    if (w.binary())
        a.add(p + "signs", {w.out, w.words()}, w.signs);
    else
        a.add(p + "codes", {w.out, w.in}, w.codes);
}

/// The entries of dense layer @p l under prefix @p p (`layer<i>.` in MLP files): bits, signs or codes, then
/// scale and bias (the logits layer) or threshold and flip.
inline void add_dense(io::archive& a, std::string const& p, packed_dense const& l)
{
    packed_weights const& w = l.weights();
    add_weights(a, p, w);
    if (l.logits()) {
        if (!w.scale.empty()) a.add(p + "scale", {w.out}, w.scale);  // binary, integer, off-DoReFa odd levels
        a.add(p + "bias", {w.out}, std::vector<float>(l.bias().begin(), l.bias().end()));
    } else {
        a.add(p + "threshold", {w.out}, l.thresholds().threshold);
        a.add(p + "flip", {kernels::words_for_bits(w.out)}, l.thresholds().flip);
    }
}
} // namespace detail

/// @brief @p m as an archive (what save_packed writes).
inline io::archive to_archive(packed_mlp const& m)
{
    io::archive a;
    a.meta()["format"] = std::string(packed_format);
    a.meta()["packed_version"] = std::to_string(packed_version);
    a.meta()["layers"] = std::to_string(m.layers().size());
    a.meta()["inputs"] = std::to_string(m.inputs());
    a.meta()["classes"] = std::to_string(m.classes());
    a.add("input.map", {2}, {m.input().scale, m.input().offset});
    for (std::size_t i = 0; i < m.layers().size(); ++i)
        detail::add_dense(a, "layer" + std::to_string(i) + ".", m.layers()[i]);
    return a;
}

namespace detail {
inline std::size_t meta_number(io::archive const& a, std::string const& key, std::size_t max)
{
    auto const it = a.meta().find(key);
    if (it == a.meta().end()) throw io::io_error{a.source(), "metadata '" + key + "' is missing"};
    std::size_t v = 0;
    auto const [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
    if (ec != std::errc{} || end != it->second.data() + it->second.size() || v > max)
        throw io::io_error{a.source(), "metadata '" + key + "' is '" + it->second + "', not a number up to " +
                                           std::to_string(max)};
    return v;
}

/// The shape of entry @p name, which must exist (an io_error otherwise).
inline std::vector<std::size_t> const& entry_shape(io::archive const& a, std::string const& name)
{
    io::archive_entry const* e = a.find(name);
    if (e == nullptr) throw io::io_error{a.source(), "missing entry '" + name + "'"};
    return e->shape;
}

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
        auto const levels = a.meta().find(p + "levels");
        if (levels != a.meta().end()) {
            if (levels->second != "integer")
                throw io::io_error{a.source(), "metadata '" + p + "levels' is '" + levels->second +
                                                   "', not 'integer' (odd levels have no such key)"};
            w.odd = false;
        }
    }
    return w;
}

/// Reads the dense layer add_dense wrote under prefix @p p, reading @p input of @p in features; @p last: the
/// logits layer. Throws invalid_input for sizes or values the layer refuses.
inline packed_dense read_dense(io::archive const& a, std::string const& p, std::size_t in, layer_input input,
                               bool last)
{
    packed_weights w = read_weights(a, p, in);
    std::vector<std::size_t> const channels{w.out};
    if (last) {
        if (w.binary() || a.find(p + "scale") != nullptr) {
            std::span<float const> const s = a.values(p + "scale", channels);
            w.scale.assign(s.begin(), s.end());
        }
        std::span<float const> const b = a.values(p + "bias", channels);
        return packed_dense(input, std::move(w), std::vector<float>(b.begin(), b.end()));
    }
    sign_thresholds t{a.integers<std::int32_t>(p + "threshold", channels),
                      a.integers<std::uint64_t>(p + "flip", std::vector<std::size_t>{kernels::words_for_bits(w.out)})};
    return packed_dense(input, std::move(w), std::move(t));
}
} // namespace detail

/// @brief The packed model held by @p a (as load_archive read it).
/// @throws io::io_error naming a.source() when it is not a packed model ("not a packed lowbit model: ..."), a
/// packed CNN or k-bit MLP (naming deploy::load_packed_cnn or load_packed_kbit), of another packed_version, or inconsistent (a missing
/// entry, a shape or type mismatch, layers that do not chain).
inline packed_mlp from_archive(io::archive const& a)
{
    detail::expect_kind(a, packed_model_kind::mlp);
    std::size_t const version = detail::meta_number(a, "packed_version", 1000000);
    if (version != packed_version)
        throw io::io_error{a.source(), "unsupported packed model version " + std::to_string(version) +
                                           ", and this lowbit reads packed version " + std::to_string(packed_version)};
    std::size_t const count = detail::meta_number(a, "layers", 1024);
    std::size_t const inputs = detail::meta_number(a, "inputs", std::size_t{1} << 40);
    std::span<float const> const map = a.values("input.map", std::vector<std::size_t>{2});
    std::vector<packed_dense> layers;
    std::size_t in = inputs;
    try {
        for (std::size_t i = 0; i < count; ++i) {
            std::string const p = "layer" + std::to_string(i) + ".";
            layers.push_back(detail::read_dense(a, p, in, i == 0 ? layer_input::codes : layer_input::signs,
                                                i + 1 == count));
            in = layers.back().out();
        }
        return packed_mlp(input_map{.scale = map[0], .offset = map[1]}, std::move(layers));
    } catch (invalid_input const& e) {  // sizes or values the layers refuse: the file is inconsistent
        throw io::io_error{a.source(), std::string("inconsistent packed model: ") + e.what()};
    }
}

/// @brief Writes @p m to @p file (atomically: an existing file is replaced only once the new one is written).
/// @throws io::io_error naming @p file when it cannot be written.
inline void save_packed(std::filesystem::path const& file, packed_mlp const& m)
{
    io::save_archive(file, to_archive(m));
}

/// @brief Reads a packed model written by save_packed.
/// @throws io::io_error naming @p file: every error of io::load_archive (missing, not a lowbit file,
/// unsupported format version, truncated, checksum mismatch), and those of from_archive.
inline packed_mlp load_packed(std::filesystem::path const& file) { return from_archive(io::load_archive(file)); }

/// @brief The size in bytes of @p m's file.
inline std::size_t packed_bytes(packed_mlp const& m) { return io::archive_bytes(to_archive(m)).size(); }

} // namespace lowbit::deploy
