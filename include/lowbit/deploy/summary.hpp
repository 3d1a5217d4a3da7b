// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief lowbit::summary(packed model): the model_summary of a packed model (packed_mlp, packed_cnn,
/// packed_kbit_mlp, packed_kbit_cnn), a row per packed layer and pooling. A packed layer's row holds the weights
/// at their bits (as the trained model's summary counts them, so that the two agree on every weight layer's
/// bits and bytes) plus what replaced BatchNorm and the activation: integer thresholds (4 bytes each) and sign
/// flips, or a logits layer's scales and biases. Its activation bits are those of the codes it reads: 8 for the
/// first layer's input codes, 1 for sign bits, k for k-bit codes. `stored_bytes` is the packed file's size.
///
/// @code
/// lowbit::deploy::packed_mlp const packed = lowbit::deploy::compile(model);
/// std::fputs(lowbit::summary(packed).table().c_str(), stdout);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/packed_cnn.hpp>
#include <lowbit/deploy/packed_cnn_file.hpp>
#include <lowbit/deploy/packed_file.hpp>
#include <lowbit/deploy/packed_kbit_cnn.hpp>
#include <lowbit/deploy/packed_kbit_cnn_file.hpp>
#include <lowbit/deploy/packed_kbit_file.hpp>
#include <lowbit/deploy/packed_kbit_mlp.hpp>
#include <lowbit/deploy/packed_mlp.hpp>
#include <lowbit/model_summary.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::deploy::detail {

/// The row of a packed layer with weights @p w reading @p activation_bits codes, with @p extra_bytes of
/// thresholds, scales and biases (counted as parameters at 4 bytes each, rounded up).
inline layer_summary packed_row(std::string name, std::vector<std::size_t> output_shape, packed_weights const& w,
                                int activation_bits, std::size_t extra_bytes, std::uint64_t macs)
{
    layer_summary r{.name = std::move(name), .output_shape = std::move(output_shape), .weight_bits = w.bits,
                    .activation_bits = activation_bits, .weights = w.in * w.out};
    std::size_t const extra_values = (extra_bytes + 3) / 4;
    r.parameters = r.weights + extra_values;
    r.float_bytes = 4 * r.weights + extra_bytes;
    r.packed_bytes = r.weight_bytes() + extra_bytes;
    r.macs[static_cast<std::size_t>(mac_kind_of(w.bits, activation_bits))] = macs;
    return r;
}

inline std::size_t bytes_of(sign_thresholds const& t) noexcept { return 4 * t.threshold.size() + 8 * t.flip.size(); }
inline std::size_t bytes_of(level_thresholds const& t) noexcept { return 4 * t.threshold.size() + t.negate.size(); }
template <class T>
std::size_t bytes_of(std::span<T const> ts) noexcept
{
    std::size_t n = 0;
    for (T const& t : ts) n += bytes_of(t);
    return n;
}

inline std::string dense_name(std::size_t in, std::size_t out, bool logits, char const* activation)
{
    return "dense " + std::to_string(in) + " -> " + std::to_string(out) + (logits ? " (logits)" : activation);
}

inline layer_summary dense_row(packed_dense const& l, int activation_bits)
{
    std::size_t const extra =
        l.logits() ? 4 * (l.bias().size() + l.weights().scale.size()) : bytes_of(l.thresholds());
    return packed_row(dense_name(l.in(), l.out(), l.logits(), " (thresholds, sign)"), {l.out()}, l.weights(),
                      activation_bits, extra, static_cast<std::uint64_t>(l.in()) * l.out());
}

inline layer_summary dense_row(packed_kbit_dense const& l, int activation_bits, int output_bits)
{
    std::size_t const extra = l.logits() ? 8 * l.scale().size() + 4 * l.bias().size() : bytes_of(l.thresholds());
    return packed_row(dense_name(l.in(), l.out(), l.logits(), (" (thresholds, " + std::to_string(output_bits) +
                                                               "-bit codes)").c_str()),
                      {l.out()}, l.weights(), activation_bits, extra, static_cast<std::uint64_t>(l.in()) * l.out());
}

template <class Conv>
layer_summary conv_row(Conv const& c, int activation_bits, std::string const& output)
{
    kernels::binary_conv2d_shape const& s = c.shape();
    std::string const name = "conv2d " + std::to_string(s.kernel) + "x" + std::to_string(s.kernel) + " " +
                             std::to_string(s.channels) + " -> " + std::to_string(s.filters) + " (thresholds, " +
                             output + ")";
    auto const macs = static_cast<std::uint64_t>(c.out_pixels()) * s.filters * s.patch_bits();
    return packed_row(name, {s.filters, s.out_height(), s.out_width()}, c.weights(), activation_bits,
                      bytes_of(c.thresholds()), macs);
}

inline layer_summary pool_row(pool_window p, std::vector<std::size_t> const& in, int bits)
{
    return {.name = "max_pool2d " + std::to_string(p.kernel) + "x" + std::to_string(p.kernel),
            .output_shape = {in[0], p.out(in[1]), p.out(in[2])}, .activation_bits = bits};
}

/// The rows of a packed CNN's convolutions and poolings, then its dense layers.
template <class Model, class DenseRow>
model_summary cnn_summary(Model const& m, int code_bits, DenseRow dense_row)
{
    model_summary s;
    int bits = 8;  // the first convolution reads the input codes
    for (std::size_t i = 0; i < m.convs().size(); ++i) {
        s.layers.push_back(conv_row(m.convs()[i], bits, code_bits == 1 ? "sign" : std::to_string(code_bits) + "-bit codes"));
        bits = code_bits;
        if (!m.pools()[i].none()) s.layers.push_back(pool_row(m.pools()[i], s.layers.back().output_shape, bits));
    }
    std::size_t const features = s.layers.back().output_shape[0] * s.layers.back().output_shape[1] *
                                 s.layers.back().output_shape[2];
    s.layers.push_back({.name = "flatten", .output_shape = {features}, .activation_bits = bits});
    for (auto const& l : m.dense()) {
        s.layers.push_back(dense_row(l, bits));
        bits = code_bits;
    }
    s.stored_bytes = packed_bytes(m);
    return s;
}

} // namespace lowbit::deploy::detail

namespace lowbit {

/// @brief The summary of a packed binarized MLP.
inline model_summary summary(deploy::packed_mlp const& m)
{
    model_summary s;
    int bits = 8;
    for (deploy::packed_dense const& l : m.layers()) {
        s.layers.push_back(deploy::detail::dense_row(l, bits));
        bits = 1;
    }
    s.stored_bytes = deploy::packed_bytes(m);
    return s;
}

/// @brief The summary of a packed MLP with k-bit activations.
inline model_summary summary(deploy::packed_kbit_mlp const& m)
{
    model_summary s;
    int bits = 8;
    for (deploy::packed_kbit_dense const& l : m.layers()) {
        int const out_bits = l.logits() ? 32 : std::bit_width(static_cast<unsigned>(l.thresholds().levels));
        s.layers.push_back(deploy::detail::dense_row(l, bits, out_bits));
        bits = out_bits;
    }
    s.stored_bytes = deploy::packed_bytes(m);
    return s;
}

/// @brief The summary of a packed binarized CNN.
inline model_summary summary(deploy::packed_cnn const& m)
{
    return deploy::detail::cnn_summary(m, 1, [](deploy::packed_dense const& l, int bits) {
        return deploy::detail::dense_row(l, bits);
    });
}

/// @brief The summary of a packed CNN with k-bit activations.
inline model_summary summary(deploy::packed_kbit_cnn const& m)
{
    int const bits = m.convs().empty() ? 1 : std::bit_width(static_cast<unsigned>(m.convs().front().levels()));
    return deploy::detail::cnn_summary(m, bits, [bits](deploy::packed_kbit_dense const& l, int in_bits) {
        return deploy::detail::dense_row(l, in_bits, l.logits() ? 32 : bits);
    });
}

} // namespace lowbit
