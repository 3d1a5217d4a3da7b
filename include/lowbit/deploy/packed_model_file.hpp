// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The file of a deploy::packed_model: save_packed / load_packed_model write and read it as a lowbit
/// archive (io/archive.hpp: magic `LOWBITCK`, little-endian, CRC-32 at the end, saved atomically) with the
/// metadata `format = lowbit-packed-model`, `packed_version = 1`, `inputs`, `classes` and `stepsteps` (the step
/// count under the prefix `step`), and one record per step under the prefix `step<i>.` (a residual block's steps
/// under `step<i>.<j>.`, their count in `step<i>.steps`), its kind in `<p>kind`:
///
/// | `<p>kind`       | entries                                                                                  |
/// |-----------------|------------------------------------------------------------------------------------------|
/// | `input_codes`   | `<p>map` float32 [2]: the input map's scale and offset                                   |
/// | `integer_dense` | `<p>input` (`codes`/`signs`), `<p>in`, the weights (`<p>bits`, `<p>signs` or `<p>codes`, `<p>levels`), `<p>output`: `signs` (`<p>threshold` int32 [out], `<p>flip` uint64), `codes` (`<p>act_bits`, `<p>threshold` int32 [out, 2^k - 1], `<p>negate` uint8 [out]) or `floats` (`<p>affine` uint64 [2 out + 1]: the float64 bits of a, offsets and steps; `<p>bias` float32 [out]) |
/// | `float_dense`   | `<p>in`, the weights, `<p>scale` float32 [out] (each channel's step, when not the default), `<p>bias` float32 (when the layer has one) |
/// | `batch_norm`    | `<p>stats` float32 [4, channels]: running mean, running variance, gamma, beta; `<p>eps` float32 [1] |
/// | `clamp`         | `<p>range` float32 [2]: lo, hi                                                           |
/// | `sign`          | none                                                                                     |
/// | `codes`         | `<p>threshold` float32 [2^k - 1], `<p>values` float32 [2^k]                              |
/// | `decode`        | `<p>values` float32                                                                      |
/// | `residual`      | `<p>steps`, the inner steps under `<p><j>.`, `<p>shortcut` float32 (the shortcut's decode values) |
/// | `nhwc`          | `<p>channels`, `<p>height`, `<p>width`                                                   |
/// | `integer_conv`  | `<p>input`, the geometry (`<p>channels`, `height`, `width`, `filters`, `kernel`, `stride`, `padding`), the weights, `<p>sets` (one per padding class, or 1), `<p>output`: `signs` (`<p>threshold` int32 [sets, out], `<p>flip` uint64 [sets, words]), `codes` (`<p>act_bits`, `<p>threshold` int32 [sets, out, 2^k - 1], `<p>negate` uint8 [sets, out]) or `floats` (`<p>affine` uint64 [sets, 2 out + 1], `<p>bias` float32 [sets, out]) |
/// | `float_conv`    | the geometry, the weights, `<p>scale`, `<p>bias` as for `float_dense`                     |
/// | `max_pool`      | `<p>kernel`, `<p>stride`                                                                 |
/// | `flatten`       | none                                                                                     |
///
/// Files of the four fixed-shape formats lowbit wrote before this one (`lowbit-packed-mlp`, `-cnn`, `-kbit-mlp`,
/// `-kbit-cnn`) are refused with a message that names the format and its version and says what to do.
///
/// @code
/// lowbit::deploy::save_packed("model.lbpk", packed);
/// lowbit::deploy::packed_model const again = lowbit::deploy::load_packed_model("model.lbpk");   // throws io::io_error
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/io/state.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace lowbit::deploy {

/// @brief The `format` metadata of a packed model file.
inline constexpr std::string_view packed_model_format = "lowbit-packed-model";

/// @brief The `packed_version` of packed model files this lowbit writes and reads.
inline constexpr std::uint32_t packed_model_version = 1;

/// @brief The largest image side (height, width) a convolution or NHWC step of a packed model file may declare,
/// and the most output pixels of all its convolutions together (sixteen maps of 512 x 512). A convolution step
/// builds a table entry per output pixel (deploy::padding_classes) as it is constructed, so a file's sizes are
/// bounded before that (docs/reliability.md has the fuzzing findings behind them).
inline constexpr std::size_t packed_model_max_side = 512;
inline constexpr std::size_t packed_model_max_pixels = std::size_t{1} << 22;

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


/// A step's name in messages: its prefix without the dot.
inline std::string step_name(std::string const& p) { return p.substr(0, p.size() - 1); }

inline void add_steps(io::archive& a, std::string const& p, std::span<packed_step const> steps);

inline void add_floats(io::archive& a, std::string const& name, std::span<float const> v)
{
    a.add(name, {v.size()}, std::vector<float>(v.begin(), v.end()));
}

/// A convolution's geometry as metadata numbers under prefix @p p.
inline void add_geometry(io::archive& a, std::string const& p, kernels::binary_conv2d_shape const& g)
{
    std::size_t const v[] = {g.channels, g.height, g.width, g.filters, g.kernel, g.stride, g.padding};
    char const* const k[] = {"channels", "height", "width", "filters", "kernel", "stride", "padding"};
    for (std::size_t i = 0; i < 7; ++i) a.meta()[p + k[i]] = std::to_string(v[i]);
}

/// Bounded as packed_model_max_side and packed_model_max_pixels say: @p pixels counts the output pixels of the
/// file's convolutions read so far.
inline kernels::binary_conv2d_shape read_geometry(io::archive const& a, std::string const& p, std::size_t& pixels)
{
    constexpr std::size_t wide = std::size_t{1} << 16;
    kernels::binary_conv2d_shape const g{
        .channels = meta_number(a, p + "channels", wide), .height = meta_number(a, p + "height", packed_model_max_side),
        .width = meta_number(a, p + "width", packed_model_max_side), .filters = meta_number(a, p + "filters", wide),
        .kernel = meta_number(a, p + "kernel", 64), .stride = meta_number(a, p + "stride", 64),
        .padding = meta_number(a, p + "padding", 64)};
    if (g.kernel == 0 || g.stride == 0 || g.height + 2 * g.padding < g.kernel || g.width + 2 * g.padding < g.kernel)
        return g;  // the step's constructor says what is wrong
    std::size_t const out = g.out_height() * g.out_width();
    if (out > packed_model_max_pixels - pixels)
        throw io::io_error{a.source(), "'" + p + "' writes a " + std::to_string(g.out_height()) + "x" +
                                           std::to_string(g.out_width()) + " feature map, over the file's limit of " +
                                           std::to_string(packed_model_max_pixels) + " output pixels in all"};
    pixels += out;
    return g;
}

/// An integer layer's float outputs (one set per padding class, @p n channels each) under prefix @p p:
/// `<p>affine` uint64 [sets, 2 n + 1] (the float64 bits of a, offsets, steps) and `<p>bias` float32 [sets, n].
/// Unstacked (@p stacked false: a dense layer's one set), the entries have no leading dimension.
inline void add_affine(io::archive& a, std::string const& p, std::span<affine_output const> sets, std::size_t n,
                       bool stacked = true)
{
    std::vector<std::uint64_t> bits;
    std::vector<float> bias;
    for (affine_output const& o : sets) {
        bits.push_back(std::bit_cast<std::uint64_t>(o.a));
        for (double const v : o.offset) bits.push_back(std::bit_cast<std::uint64_t>(v));
        for (double const v : o.step) bits.push_back(std::bit_cast<std::uint64_t>(v));
        bias.insert(bias.end(), o.bias.begin(), o.bias.end());
    }
    auto const shape = [&](std::size_t row) {
        return stacked ? std::vector<std::size_t>{sets.size(), row} : std::vector<std::size_t>{row};
    };
    a.add(p + "affine", shape(2 * n + 1), bits);
    a.add(p + "bias", shape(n), bias);
}

/// What add_affine wrote (@p stacked), or a dense layer's one set without the leading dimension.
inline std::vector<affine_output> read_affine(io::archive const& a, std::string const& p, std::size_t n, std::size_t sets,
                                              bool stacked = true)
{
    auto const shape = [&](std::size_t row) {
        return stacked ? std::vector<std::size_t>{sets, row} : std::vector<std::size_t>{row};
    };
    std::vector<std::uint64_t> const bits = a.integers<std::uint64_t>(p + "affine", shape(2 * n + 1));
    std::span<float const> const bias = a.values(p + "bias", shape(n));
    std::vector<affine_output> out(sets);
    for (std::size_t c = 0; c < sets; ++c) {
        std::uint64_t const* b = bits.data() + c * (2 * n + 1);
        out[c].a = std::bit_cast<double>(b[0]);
        for (std::size_t j = 0; j < n; ++j) {
            out[c].offset.push_back(std::bit_cast<double>(b[1 + j]));
            out[c].step.push_back(std::bit_cast<double>(b[1 + n + j]));
        }
        out[c].bias.assign(bias.begin() + static_cast<std::ptrdiff_t>(c * n), bias.begin() + static_cast<std::ptrdiff_t>((c + 1) * n));
        // A value the compiler cannot have written: every output would be NaN or infinite.
        bool finite = std::isfinite(out[c].a);
        for (std::size_t j = 0; j < n; ++j)
            finite = finite && std::isfinite(out[c].offset[j]) && std::isfinite(out[c].step[j]) &&
                     std::isfinite(out[c].bias[j]);
        if (!finite)
            throw io::io_error{a.source(), "'" + p + "affine' or '" + p + "bias' holds a value that is not finite (set " +
                                               std::to_string(c) + ")"};
    }
    return out;
}

/// Sign thresholds, one set per padding class: `<p>threshold` int32 [sets, n], `<p>flip` uint64 [sets, words].
inline void add_sign_sets(io::archive& a, std::string const& p, std::span<sign_thresholds const> sets, std::size_t n)
{
    std::vector<std::int32_t> t;
    std::vector<std::uint64_t> f;
    for (sign_thresholds const& s : sets) {
        t.insert(t.end(), s.threshold.begin(), s.threshold.end());
        f.insert(f.end(), s.flip.begin(), s.flip.end());
    }
    a.add(p + "threshold", {sets.size(), n}, t);
    a.add(p + "flip", {sets.size(), kernels::words_for_bits(n)}, f);
}

inline std::vector<sign_thresholds> read_sign_sets(io::archive const& a, std::string const& p, std::size_t n, std::size_t sets)
{
    std::size_t const words = kernels::words_for_bits(n);
    std::vector<std::int32_t> const t = a.integers<std::int32_t>(p + "threshold", std::vector<std::size_t>{sets, n});
    std::vector<std::uint64_t> const f = a.integers<std::uint64_t>(p + "flip", std::vector<std::size_t>{sets, words});
    std::vector<sign_thresholds> out(sets);
    for (std::size_t c = 0; c < sets; ++c) {
        out[c].threshold.assign(t.begin() + static_cast<std::ptrdiff_t>(c * n), t.begin() + static_cast<std::ptrdiff_t>((c + 1) * n));
        out[c].flip.assign(f.begin() + static_cast<std::ptrdiff_t>(c * words), f.begin() + static_cast<std::ptrdiff_t>((c + 1) * words));
    }
    return out;
}

inline void add_step(io::archive& a, std::string const& p, packed_step const& s)
{
    auto kind = [&](char const* k) { a.meta()[p + "kind"] = k; };
    std::visit(
        [&]<class S>(S const& step) {
            if constexpr (std::is_same_v<S, input_codes_step>) {
                kind("input_codes");
                a.add(p + "map", {2}, {step.map.scale, step.map.offset});
            } else if constexpr (std::is_same_v<S, integer_dense_step>) {
                kind("integer_dense");
                a.meta()[p + "input"] = step.input() == layer_input::codes ? "codes" : "signs";
                a.meta()[p + "in"] = std::to_string(step.in());
                add_weights(a, p, step.weights());
                std::visit(
                    [&]<class O>(O const& o) {
                        if constexpr (std::is_same_v<O, sign_thresholds>) {
                            a.meta()[p + "output"] = "signs";
                            a.add(p + "threshold", {o.size()}, o.threshold);
                            a.add(p + "flip", {o.flip.size()}, o.flip);
                        } else if constexpr (std::is_same_v<O, level_thresholds>) {
                            a.meta()[p + "output"] = "codes";
                            add_level_thresholds(a, p, step_name(p), std::span<level_thresholds const>(&o, 1), false);
                        } else {
                            a.meta()[p + "output"] = "floats";
                            add_affine(a, p, std::span<affine_output const>(&o, 1), step.out(), false);
                        }
                    },
                    step.stage());
            } else if constexpr (std::is_same_v<S, float_dense_step>) {
                kind("float_dense");
                a.meta()[p + "in"] = std::to_string(step.in());
                add_weights(a, p, step.weights());
                if (!step.weights().scale.empty()) add_floats(a, p + "scale", step.weights().scale);
                if (!step.bias().empty()) add_floats(a, p + "bias", step.bias());
            } else if constexpr (std::is_same_v<S, batch_norm_step>) {
                kind("batch_norm");
                nn::batch_norm<2> n = step.norm;
                std::vector<float> stats;
                for (std::span<float> v : {n.running_mean(), n.running_var(), n.gamma(), n.beta()})
                    stats.insert(stats.end(), v.begin(), v.end());
                a.add(p + "stats", {4, n.options().channels}, stats);
                a.add(p + "eps", {1}, {n.options().eps});
            } else if constexpr (std::is_same_v<S, clamp_step>) {
                kind("clamp");
                a.add(p + "range", {2}, {step.lo, step.hi});
            } else if constexpr (std::is_same_v<S, sign_step>) {
                kind("sign");
            } else if constexpr (std::is_same_v<S, codes_step>) {
                kind("codes");
                add_floats(a, p + "threshold", step.threshold);
                add_floats(a, p + "values", step.values);
            } else if constexpr (std::is_same_v<S, decode_step>) {
                kind("decode");
                add_floats(a, p + "values", step.values);
            } else if constexpr (std::is_same_v<S, nhwc_step>) {
                kind("nhwc");
                a.meta()[p + "channels"] = std::to_string(step.channels);
                a.meta()[p + "height"] = std::to_string(step.height);
                a.meta()[p + "width"] = std::to_string(step.width);
            } else if constexpr (std::is_same_v<S, integer_conv_step>) {
                kind("integer_conv");
                a.meta()[p + "input"] = step.input() == layer_input::codes ? "codes" : "signs";
                add_geometry(a, p, step.shape());
                add_weights(a, p, step.weights());
                std::size_t const n = step.shape().filters;
                std::visit(
                    [&]<class O>(O const& o) {
                        a.meta()[p + "sets"] = std::to_string(o.size());
                        if constexpr (std::is_same_v<O, std::vector<sign_thresholds>>) {
                            a.meta()[p + "output"] = "signs";
                            add_sign_sets(a, p, o, n);
                        } else if constexpr (std::is_same_v<O, std::vector<level_thresholds>>) {
                            a.meta()[p + "output"] = "codes";
                            add_level_thresholds(a, p, step_name(p), o, true);
                        } else {
                            a.meta()[p + "output"] = "floats";
                            add_affine(a, p, o, n);
                        }
                    },
                    step.stage());
            } else if constexpr (std::is_same_v<S, float_conv_step>) {
                kind("float_conv");
                add_geometry(a, p, step.shape());
                add_weights(a, p, step.weights());
                if (!step.weights().scale.empty()) add_floats(a, p + "scale", step.weights().scale);
                if (!step.bias().empty()) add_floats(a, p + "bias", step.bias());
            } else if constexpr (std::is_same_v<S, max_pool_step>) {
                kind("max_pool");
                a.meta()[p + "kernel"] = std::to_string(step.window.kernel);
                a.meta()[p + "stride"] = std::to_string(step.window.stride);
            } else if constexpr (std::is_same_v<S, flatten_step>) {
                kind("flatten");
            } else {
                kind("residual");
                add_floats(a, p + "shortcut", step.shortcut.values);
                add_steps(a, p, step.inner);
            }
        },
        s.op);
}

inline void add_steps(io::archive& a, std::string const& p, std::span<packed_step const> steps)
{
    a.meta()[p + "steps"] = std::to_string(steps.size());
    for (std::size_t i = 0; i < steps.size(); ++i) add_step(a, p + std::to_string(i) + ".", steps[i]);
}

/// The float32 vector entry @p name of any length (at most @p max values).
inline std::vector<float> read_floats(io::archive const& a, std::string const& name, std::size_t max)
{
    std::vector<std::size_t> const& shape = entry_shape(a, name);
    std::size_t const n = shape.size() == 1 ? shape[0] : 0;
    if (shape.size() != 1 || n > max)
        throw io::io_error{a.source(), "entry '" + name + "' is not a vector of at most " + std::to_string(max) +
                                           " values"};
    std::span<float const> const v = a.values(name, shape);
    return {v.begin(), v.end()};
}

/// read_floats for a float layer's scales and biases, which must be finite (a model of NaN or infinite outputs
/// is a damaged file, not a model).
inline std::vector<float> read_finite_floats(io::archive const& a, std::string const& name, std::size_t max)
{
    std::vector<float> v = read_floats(a, name, max);
    if (!std::ranges::all_of(v, [](float x) { return std::isfinite(x); }))
        throw io::io_error{a.source(), "entry '" + name + "' holds a value that is not finite"};
    return v;
}

inline std::vector<packed_step> read_steps(io::archive const& a, std::string const& p, int depth, std::size_t& pixels);

/// The step under prefix @p p; throws invalid_input for values its constructor refuses.
inline packed_step read_step(io::archive const& a, std::string const& p, int depth, std::size_t& pixels)
{
    std::string const k = io::meta_text(a, p + "kind");
    constexpr std::size_t wide = std::size_t{1} << 30;
    if (k == "input_codes") {
        std::span<float const> const m = a.values(p + "map", std::vector<std::size_t>{2});
        input_map const map{.scale = m[0], .offset = m[1]};
        map.check();
        return {input_codes_step{map}};
    }
    if (k == "integer_dense") {
        std::string const input = io::meta_text(a, p + "input");
        if (input != "codes" && input != "signs")
            throw io::io_error{a.source(), "metadata '" + p + "input' is '" + input + "', not 'codes' or 'signs'"};
        packed_weights w = read_weights(a, p, meta_number(a, p + "in", wide));
        std::size_t const n = w.out;
        std::string const output = io::meta_text(a, p + "output");
        integer_dense_step::output out;
        if (output == "signs") {
            out = sign_thresholds{a.integers<std::int32_t>(p + "threshold", std::vector<std::size_t>{n}),
                                  a.integers<std::uint64_t>(p + "flip", std::vector<std::size_t>{kernels::words_for_bits(n)})};
        } else if (output == "codes") {
            out = std::move(read_level_thresholds(a, p, step_name(p), n, 1, false).front());
        } else if (output == "floats") {
            out = std::move(read_affine(a, p, n, 1, false).front());
        } else {
            throw io::io_error{a.source(), "metadata '" + p + "output' is '" + output +
                                               "', not 'signs', 'codes' or 'floats'"};
        }
        return {integer_dense_step(input == "codes" ? layer_input::codes : layer_input::signs, std::move(w), std::move(out))};
    }
    if (k == "float_dense") {
        packed_weights w = read_weights(a, p, meta_number(a, p + "in", wide));
        if (a.find(p + "scale") != nullptr) w.scale = read_finite_floats(a, p + "scale", w.out);
        std::vector<float> bias;
        if (a.find(p + "bias") != nullptr) bias = read_finite_floats(a, p + "bias", w.out);
        return {float_dense_step(std::move(w), std::move(bias))};
    }
    if (k == "batch_norm") {
        std::vector<std::size_t> const& shape = entry_shape(a, p + "stats");
        if (shape.size() != 2 || shape[0] != 4)
            throw io::io_error{a.source(), "entry '" + p + "stats' is not [4, channels]"};
        std::size_t const c = shape[1];
        std::span<float const> const s = a.values(p + "stats", shape);
        float const eps = a.values(p + "eps", std::vector<std::size_t>{1})[0];
        nn::batch_norm<2> n({.channels = c, .eps = eps});
        std::span<float> const dst[] = {n.running_mean(), n.running_var(), n.gamma(), n.beta()};
        for (std::size_t r = 0; r < 4; ++r) std::copy(s.begin() + static_cast<std::ptrdiff_t>(r * c),
                                                      s.begin() + static_cast<std::ptrdiff_t>((r + 1) * c), dst[r].begin());
        return {batch_norm_step{std::move(n)}};
    }
    if (k == "clamp") {
        std::span<float const> const r = a.values(p + "range", std::vector<std::size_t>{2});
        return {clamp_step{r[0], r[1]}};
    }
    if (k == "sign") return {sign_step{}};
    if (k == "codes") {
        codes_step s{read_floats(a, p + "threshold", 255), read_floats(a, p + "values", 256)};
        if (s.values.size() != s.threshold.size() + 1 || !std::is_sorted(s.threshold.begin(), s.threshold.end()))
            throw invalid_input(p + ": codes need ascending thresholds and one value more than thresholds");
        return {std::move(s)};
    }
    if (k == "decode") return {decode_step{read_floats(a, p + "values", 256)}};
    if (k == "nhwc") {
        return {nhwc_step{meta_number(a, p + "channels", std::size_t{1} << 16),
                          meta_number(a, p + "height", packed_model_max_side),
                          meta_number(a, p + "width", packed_model_max_side)}};
    }
    if (k == "integer_conv" || k == "float_conv") {
        kernels::binary_conv2d_shape const g = read_geometry(a, p, pixels);
        packed_weights w = read_weights(a, p, g.kernel * g.kernel * g.channels);
        if (w.out != g.filters)
            throw io::io_error{a.source(), "'" + p + "' has weights of " + std::to_string(w.out) + " filters, not " +
                                               std::to_string(g.filters)};
        if (k == "float_conv") {
            if (a.find(p + "scale") != nullptr) w.scale = read_finite_floats(a, p + "scale", w.out);
            std::vector<float> bias;
            if (a.find(p + "bias") != nullptr) bias = read_finite_floats(a, p + "bias", w.out);
            return {float_conv_step(g, std::move(w), std::move(bias))};
        }
        std::string const input = io::meta_text(a, p + "input");
        if (input != "codes" && input != "signs")
            throw io::io_error{a.source(), "metadata '" + p + "input' is '" + input + "', not 'codes' or 'signs'"};
        std::size_t const sets = meta_number(a, p + "sets", 64);
        std::size_t const n = g.filters;
        std::string const output = io::meta_text(a, p + "output");
        integer_conv_step::output out;
        if (output == "signs")
            out = read_sign_sets(a, p, n, sets);
        else if (output == "codes")
            out = read_level_thresholds(a, p, step_name(p), n, sets, true);
        else if (output == "floats")
            out = read_affine(a, p, n, sets);
        else
            throw io::io_error{a.source(), "metadata '" + p + "output' is '" + output + "', not 'signs', 'codes' or 'floats'"};
        return {integer_conv_step(input == "codes" ? layer_input::codes : layer_input::signs, g, std::move(w), std::move(out))};
    }
    if (k == "max_pool") return {max_pool_step{{.kernel = meta_number(a, p + "kernel", 64), .stride = meta_number(a, p + "stride", 64)}}};
    if (k == "flatten") return {flatten_step{}};
    if (k == "residual") {
        if (depth >= 16) throw io::io_error{a.source(), "residual blocks nest deeper than 16 at '" + p + "'"};
        residual_step r;
        r.shortcut.values = read_floats(a, p + "shortcut", 256);
        r.inner = read_steps(a, p, depth + 1, pixels);
        return {std::move(r)};
    }
    throw io::io_error{a.source(), "metadata '" + p + "kind' is '" + k + "', which is no packed step"};
}

inline std::vector<packed_step> read_steps(io::archive const& a, std::string const& p, int depth, std::size_t& pixels)
{
    std::size_t const count = meta_number(a, p + "steps", 4096);
    std::vector<packed_step> steps;
    for (std::size_t i = 0; i < count; ++i) steps.push_back(read_step(a, p + std::to_string(i) + ".", depth, pixels));
    return steps;
}

} // namespace detail

/// @brief @p m as an archive (what save_packed writes).
inline io::archive to_archive(packed_model const& m)
{
    io::archive a;
    a.meta()["format"] = std::string(packed_model_format);
    a.meta()["packed_version"] = std::to_string(packed_model_version);
    a.meta()["inputs"] = std::to_string(m.inputs());
    a.meta()["classes"] = std::to_string(m.classes());
    detail::add_steps(a, "step", m.steps());
    return a;
}

namespace detail {
/// The formats of the fixed-shape packed models (binarized and k-bit MLP and CNN) that lowbit wrote before
/// `lowbit-packed-model` replaced them. Their files hold the layers of one model shape, not steps: a reader for
/// them would keep four loaders alive for files that the checkpoint they came from compiles again in seconds.
inline constexpr std::array<std::string_view, 4> retired_packed_formats{
    "lowbit-packed-mlp", "lowbit-packed-cnn", "lowbit-packed-kbit-mlp", "lowbit-packed-kbit-cnn"};

/// Throws io::io_error naming a.source() unless @p a's `format` is packed_model_format: for a retired format,
/// naming it and its packed_version and what to do instead; for anything else (a training checkpoint), that it is
/// not a packed model.
inline void expect_packed_model(io::archive const& a)
{
    auto const meta = [&](char const* key) -> std::optional<std::string> {
        auto const it = a.meta().find(key);
        return it == a.meta().end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    std::optional<std::string> const format = meta("format");
    if (format == packed_model_format) return;
    if (format && std::ranges::find(retired_packed_formats, *format) != retired_packed_formats.end())
        throw io::io_error{a.source(), "a '" + *format + "' file (packed_version " + meta("packed_version").value_or("?") +
                                           "), a fixed-shape format that lowbit no longer reads: compile the model "
                                           "again from its checkpoint (lowbit::deploy::compile, or lowbit-infer "
                                           "--checkpoint FILE --save-packed FILE), which writes '" +
                                           std::string(packed_model_format) + "'"};
    throw io::io_error{a.source(), "not a packed lowbit model: metadata 'format' is " +
                                       (format ? "'" + *format + "'" : std::string("missing")) + ", expected '" +
                                       std::string(packed_model_format) +
                                       "' (a training checkpoint must be compiled first: lowbit-infer --checkpoint)"};
}
} // namespace detail

/// @brief The packed model held by @p a (as io::load_archive read it).
/// @throws io::io_error naming a.source() when it is no packed model, a file of a retired fixed-shape format
/// (naming it and what to do), of another packed_version, or inconsistent (a missing entry, a shape or type mismatch, a step
/// whose values its constructor refuses).
inline packed_model packed_model_from_archive(io::archive const& a)
{
    detail::expect_packed_model(a);
    std::size_t const version = detail::meta_number(a, "packed_version", 1000000);
    if (version != packed_model_version)
        throw io::io_error{a.source(), "unsupported packed model version " + std::to_string(version) +
                                           ", and this lowbit reads packed version " +
                                           std::to_string(packed_model_version)};
    std::size_t const inputs = detail::meta_number(a, "inputs", std::size_t{1} << 30);
    std::size_t const classes = detail::meta_number(a, "classes", std::size_t{1} << 30);
    try {
        std::size_t pixels = 0;
        return packed_model(inputs, classes, detail::read_steps(a, "step", 0, pixels));
    } catch (invalid_input const& e) {
        throw io::io_error{a.source(), std::string("inconsistent packed model: ") + e.what()};
    }
}

/// @brief Writes @p m to @p file (atomically).
/// @throws io::io_error naming @p file when it cannot be written.
inline void save_packed(std::filesystem::path const& file, packed_model const& m) { io::save_archive(file, to_archive(m)); }

/// @brief Reads a packed model written by save_packed.
/// @throws io::io_error naming @p file: every error of io::load_archive (missing, not a lowbit file, truncated,
/// checksum mismatch) and of packed_model_from_archive.
inline packed_model load_packed_model(std::filesystem::path const& file)
{
    return packed_model_from_archive(io::load_archive(file));
}

/// @brief The size in bytes of @p m's file.
inline std::size_t packed_bytes(packed_model const& m) { return io::archive_bytes(to_archive(m)).size(); }

} // namespace lowbit::deploy
