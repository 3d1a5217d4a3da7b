// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief qtensor<Q>: a tensor stored as packed codes of Q's bit width, plus one step per tensor or per output
/// channel and its shape. Made by quantize(), read back by dequantize().
///
/// Memory: exactly packed_bytes() = ceil(n * bits / 8) bytes of codes, plus the steps (one float per
/// channel) and the shape; see memory_bytes().

#include <lowbit/config.hpp>
#include <lowbit/kernels/quantize_params.hpp>
#include <lowbit/quant/quantizer.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace lowbit {

/// @brief A bit-packed quantized tensor whose precision is its type.
/// @tparam Q the quantizer that produced it: bit width, grid and granularity are read from it.
template <Quantizer Q>
class qtensor {
public:
    using quantizer_type = Q;
    static constexpr int bits = Q::bits;
    static constexpr level_range levels = Q::grid_type::template levels<Q::bits>();

    qtensor() = default;

    /// @brief Adopts packed codes. Throws invalid_input when the sizes do not fit the shape: `codes` must hold
    /// ceil(n * bits / 8) bytes and `steps` one step per tensor (per_tensor) or per slice of axis 0.
    qtensor(std::vector<std::size_t> shape, std::vector<std::uint8_t> codes, std::vector<float> steps)
        : shape_(std::move(shape)), codes_(std::move(codes)), steps_(std::move(steps))
    {
        std::size_t const n = size();
        if (codes_.size() != kernels::packed_bytes(n, bits))
            throw invalid_input("lowbit::qtensor: " + std::to_string(n) + " codes of " + std::to_string(bits) +
                                " bits need " + std::to_string(kernels::packed_bytes(n, bits)) + " bytes, got " +
                                std::to_string(codes_.size()));
        if (steps_.size() != channels())
            throw invalid_input("lowbit::qtensor: expected " + std::to_string(channels()) + " step(s), got " +
                                std::to_string(steps_.size()));
    }

    /// Shape, row-major.
    std::span<std::size_t const> shape() const noexcept { return shape_; }
    std::size_t dimension() const noexcept { return shape_.size(); }
    /// Number of elements.
    std::size_t size() const noexcept
    {
        return std::accumulate(shape_.begin(), shape_.end(), std::size_t{1}, std::multiplies<>{});
    }
    /// Number of scale slices: 1 for per-tensor, shape[0] for per-channel.
    std::size_t channels() const noexcept
    {
        if constexpr (std::is_same_v<typename Q::granularity_type, per_channel_t>)
            return shape_.empty() ? 1 : shape_[0];
        else
            return 1;
    }
    /// Elements per scale slice.
    std::size_t channel_size() const noexcept { return channels() == 0 ? 0 : size() / channels(); }

    /// The packed code stream (see kernels/reference/pack.hpp for the bit order).
    std::span<std::uint8_t const> codes() const noexcept { return codes_; }
    std::span<std::uint8_t> codes() noexcept { return codes_; }
    /// The grid step of each slice.
    std::span<float const> steps() const noexcept { return steps_; }

    /// Bytes of packed codes: ceil(size() * bits / 8).
    std::size_t packed_bytes() const noexcept { return codes_.size(); }
    /// All bytes this tensor owns: the object itself, the packed codes, the steps and the shape.
    std::size_t memory_bytes() const noexcept
    {
        return sizeof(*this) + codes_.capacity() + steps_.capacity() * sizeof(float) +
               shape_.capacity() * sizeof(std::size_t);
    }

    /// The code (level - qmin) of element i, 0 <= code < 2^bits.
    std::uint8_t code(std::size_t i) const noexcept
    {
        std::size_t const bit = i * bits;
        unsigned v = codes_[bit / 8];
        if (bit % 8 + bits > 8) v |= static_cast<unsigned>(codes_[bit / 8 + 1]) << 8;
        return static_cast<std::uint8_t>((v >> (bit % 8)) & ((1u << bits) - 1u));
    }
    /// The real value of element i.
    float value(std::size_t i) const noexcept
    {
        float const step = steps_[channels() == 1 ? 0 : i / channel_size()];
        return (static_cast<float>(static_cast<int>(code(i)) + levels.qmin) + levels.offset) * step;
    }

private:
    std::vector<std::size_t> shape_;
    std::vector<std::uint8_t> codes_;
    std::vector<float> steps_;
};

} // namespace lowbit
