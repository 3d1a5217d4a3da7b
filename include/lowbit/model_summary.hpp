// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief model_summary: per layer its name, output shape, weight and activation bits, parameters, bytes as
/// float and as packed, and multiply-accumulates by kind, with totals and the compression ratio (Larq's
/// model summary). lowbit::summary() makes one of a trained model (nn/summary.hpp) and of a packed model
/// (deploy/summary.hpp); `table()` prints it.
///
/// Bytes: `float_bytes` is 4 bytes per value the layer keeps (parameters and buffers such as BatchNorm's
/// running statistics); `packed_bytes` holds the weights at their bit width, ceil(count * bits / 8), plus 4
/// bytes per value that stays float (biases, scales, BatchNorm, a packed model's thresholds). Both kinds of
/// model count weights the same way, so a trained model's summary and its packed model's agree on every
/// weight layer's bits and bytes. A packed model's `stored_bytes` adds what its layout costs beyond that
/// (rows padded to 64 bits, k-bit levels in int8 codes).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace lowbit {

/// @brief The kind of a multiply-accumulate: float, int8 (one side has 8 bits), k-bit (both sides 2..7 bits, or
/// one binary), binary (XNOR-popcount, both sides 1 bit).
enum class mac_kind : std::uint8_t { float32, int8, kbit, binary };

/// @brief The kind of a multiply-accumulate of a weight of @p weight_bits with an activation of
/// @p activation_bits (32: float).
constexpr mac_kind mac_kind_of(int weight_bits, int activation_bits) noexcept
{
    if (weight_bits > 8 || activation_bits > 8) return mac_kind::float32;
    if (weight_bits == 1 && activation_bits == 1) return mac_kind::binary;
    if (weight_bits == 8 || activation_bits == 8) return mac_kind::int8;
    return mac_kind::kbit;
}

/// @brief One row of a model summary.
struct layer_summary {
    std::string name;                          ///< e.g. "dense 784 -> 1024", "conv2d 3x3 1 -> 64 /1 +1"
    std::vector<std::size_t> output_shape;     ///< per sample
    int weight_bits = 0;                       ///< 0: no weights; 32: float weights
    int activation_bits = 32;                  ///< of the values the layer reads
    std::size_t weights = 0;                   ///< weight values
    std::size_t parameters = 0;                ///< trained values: weights, biases, BatchNorm's gamma and beta, learned bounds
    std::size_t float_bytes = 0;
    std::size_t packed_bytes = 0;
    std::array<std::uint64_t, 4> macs{};       ///< per sample, indexed by mac_kind

    /// The bytes of the weights at their bit width, ceil(weights * bits / 8).
    std::size_t weight_bytes() const noexcept
    {
        return (weights * static_cast<std::size_t>(weight_bits > 0 ? weight_bits : 32) + 7) / 8;
    }
};

/// @brief A model's summary: its rows, their totals and the compression ratio.
struct model_summary {
    std::vector<layer_summary> layers;
    std::size_t stored_bytes = 0;  ///< a packed model's bytes as it holds them (0 for a trained model)

    std::size_t parameters() const noexcept { return sum(&layer_summary::parameters); }
    std::size_t float_bytes() const noexcept { return sum(&layer_summary::float_bytes); }
    std::size_t packed_bytes() const noexcept { return sum(&layer_summary::packed_bytes); }
    std::uint64_t macs(mac_kind k) const noexcept
    {
        std::uint64_t n = 0;
        for (layer_summary const& l : layers) n += l.macs[static_cast<std::size_t>(k)];
        return n;
    }
    /// float_bytes() / packed_bytes().
    double compression() const noexcept
    {
        return packed_bytes() == 0 ? 0.0 : static_cast<double>(float_bytes()) / static_cast<double>(packed_bytes());
    }

    /// The summary as a text table, a row per layer, then the totals.
    std::string table() const
    {
        std::vector<std::vector<std::string>> rows{{"layer", "output", "w bits", "a bits", "params", "float B",
                                                    "packed B", "float MAC", "int8 MAC", "k-bit MAC", "binary MAC"}};
        auto bits = [](int b) { return b == 0 ? std::string("-") : std::to_string(b); };
        for (layer_summary const& l : layers) {
            std::string shape;
            for (std::size_t d : l.output_shape) shape += (shape.empty() ? "" : "x") + std::to_string(d);
            rows.push_back({l.name, shape, bits(l.weight_bits), bits(l.activation_bits), std::to_string(l.parameters),
                            std::to_string(l.float_bytes), std::to_string(l.packed_bytes), count(l.macs[0]),
                            count(l.macs[1]), count(l.macs[2]), count(l.macs[3])});
        }
        rows.push_back({"total", "", "", "", std::to_string(parameters()), std::to_string(float_bytes()),
                        std::to_string(packed_bytes()), count(macs(mac_kind::float32)), count(macs(mac_kind::int8)),
                        count(macs(mac_kind::kbit)), count(macs(mac_kind::binary))});
        std::vector<std::size_t> width(rows[0].size(), 0);
        for (auto const& r : rows)
            for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
        std::string out;
        for (std::size_t i = 0; i < rows.size(); ++i) {
            if (i == rows.size() - 1 || i == 1) out += std::string(line_width(width), '-') + '\n';
            for (std::size_t c = 0; c < rows[i].size(); ++c) {
                std::string const& cell = rows[i][c];
                std::string const pad(width[c] - cell.size(), ' ');
                out += c == 0 ? cell + pad : "  " + pad + cell;  // the name left-aligned, numbers right-aligned
            }
            out += '\n';
        }
        char ratio[64];
        std::snprintf(ratio, sizeof ratio, "compression: %.2fx (float bytes / packed bytes)", compression());
        out += ratio;
        if (stored_bytes != 0) out += "; stored: " + std::to_string(stored_bytes) + " bytes";
        return out + '\n';
    }

private:
    std::size_t sum(std::size_t layer_summary::*m) const noexcept
    {
        std::size_t n = 0;
        for (layer_summary const& l : layers) n += l.*m;
        return n;
    }
    static std::string count(std::uint64_t n) { return n == 0 ? std::string("-") : std::to_string(n); }
    static std::size_t line_width(std::vector<std::size_t> const& w) noexcept
    {
        std::size_t n = 0;
        for (std::size_t x : w) n += x + 2;
        return n - 2;
    }
};

} // namespace lowbit
