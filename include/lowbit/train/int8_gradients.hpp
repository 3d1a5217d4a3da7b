// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief train::int8_gradients: 8-bit codes for the gradients that the processes of a data-parallel run send
/// each other, with stochastic rounding and error feedback (fit_options::gradient_bits = 8; off by default).
///
/// Per block of 4096 values, v = g + e (this process's gradient plus what earlier steps left out), the scale
/// s = max|v| / 127, the code q = floor(v / s + u) with u uniform on [0, 1) (stochastic rounding: E[s q] = v),
/// and the new residual e = v - s q, kept for the next step (error feedback: Seide et al. 2014, "1-bit SGD";
/// Karimireddy et al. 2019, "Error feedback fixes SignSGD"). Over steps the values sent track the gradients:
/// the sum of what was sent differs from the sum of the gradients by the last residual only, at most one step
/// s per value. On the wire a value takes 1 byte instead of 4, plus a 4-byte scale per block.
///
/// @code
/// lowbit::train::int8_gradients codec;
/// std::vector<std::byte> wire(lowbit::train::int8_gradients::wire_bytes(g.size()));
/// codec.encode(g, {.seed = 1, .step = 0, .stream = 7}, wire);     // this process's message
/// std::vector<float> sum(g.size(), 0.0f);
/// lowbit::train::int8_gradients::add_decoded(wire, sum);          // sum += s q
/// @endcode

#include <lowbit/random/philox.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace lowbit::train {

/// @brief 8-bit gradient codes with stochastic rounding and error feedback (see the file comment).
class int8_gradients {
public:
    static constexpr std::size_t block = 4096;

    /// Bytes of the message for n values: the scales (one float per block), then the codes.
    static constexpr std::size_t wire_bytes(std::size_t n) noexcept { return blocks(n) * sizeof(float) + n; }

    /// Writes the codes of g plus the residual into wire (wire_bytes(g.size()) bytes) and keeps the new residual.
    void encode(std::span<float const> g, random::counter_key key, std::span<std::byte> wire)
    {
        std::size_t const n = g.size(), nb = blocks(n);
        if (residual_.size() != n) residual_.assign(n, 0.0f);
        draws_.resize(std::min(n, block));
        auto* const codes = reinterpret_cast<std::int8_t*>(wire.data() + nb * sizeof(float));
        for (std::size_t b = 0; b < nb; ++b) {
            std::size_t const i0 = b * block, len = std::min(block, n - i0);
            float m = 0.0f;
            for (std::size_t i = i0; i < i0 + len; ++i) m = std::max(m, std::abs(g[i] + residual_[i]));
            float const s = m / 127.0f;
            std::memcpy(wire.data() + b * sizeof(float), &s, sizeof s);
            random::uniform_fill(key, i0, draws_.data(), len);
            for (std::size_t i = i0; i < i0 + len; ++i) {
                float const v = g[i] + residual_[i];
                float const q = s > 0.0f ? std::clamp(std::floor(v / s + draws_[i - i0]), -127.0f, 127.0f) : 0.0f;
                codes[i] = static_cast<std::int8_t>(q);
                residual_[i] = v - s * q;
            }
        }
    }

    /// out += the values a message holds (s q per value), in value order.
    static void add_decoded(std::span<std::byte const> wire, std::span<float> out)
    {
        std::size_t const n = out.size(), nb = blocks(n);
        auto const* const codes = reinterpret_cast<std::int8_t const*>(wire.data() + nb * sizeof(float));
        for (std::size_t b = 0; b < nb; ++b) {
            float s = 0.0f;
            std::memcpy(&s, wire.data() + b * sizeof(float), sizeof s);
            std::size_t const i0 = b * block, len = std::min(block, n - i0);
            for (std::size_t i = i0; i < i0 + len; ++i) out[i] += s * static_cast<float>(codes[i]);
        }
    }

    /// What earlier steps left out, value by value (0 before the first encode).
    std::span<float const> residual() const noexcept { return residual_; }

private:
    static constexpr std::size_t blocks(std::size_t n) noexcept { return (n + block - 1) / block; }
    std::vector<float> residual_;
    std::vector<float> draws_;
};

} // namespace lowbit::train
