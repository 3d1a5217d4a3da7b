// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::packed_kbit_mlp: a packed inference model of an MLP with k-bit PACT activations, as
/// deploy::compile makes it from a trained `nn::mlp(o, W, First, Last, ste::pact<Bits>{...}, nn::bias_head)`:
/// an input map (float -> 8-bit codes), layers that read 8-bit codes and write the next layer's k-bit codes
/// (BatchNorm + ReLU + PACT folded into per-channel level thresholds), and a last layer that writes float
/// logits. Between layers the activations are one byte per value, the int8 kernel's unsigned operand.
///
/// @code
/// lowbit::deploy::packed_kbit_mlp const packed = lowbit::deploy::compile(pact_mlp);
/// xt::xtensor<float, 2> const logits = packed.forward(images);             // [batch, classes]
/// @endcode
///
/// forward() is const and keeps no state between calls, so one model may serve several threads. Its file
/// (`lowbit-packed-kbit-mlp`: save_packed / load_packed_kbit) is in deploy/packed_kbit_file.hpp.

#include <lowbit/config.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/packed_kbit_dense.hpp>
#include <lowbit/kernels/matrix_view.hpp>

#include <xtensor/xtensor.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief A packed MLP with k-bit activations; see the file comment.
class packed_kbit_mlp {
public:
    packed_kbit_mlp() = default;

    /// @brief Chains @p layers behind @p input.
    /// @throws invalid_input unless there are at least two layers, only the last writes logits, and each
    /// layer's inputs are the previous one's outputs.
    packed_kbit_mlp(deploy::input_map input, std::vector<packed_kbit_dense> layers)
        : input_(input), layers_(std::move(layers))
    {
        input_.check();
        std::string const who = "lowbit::deploy::packed_kbit_mlp: ";
        if (layers_.size() < 2) throw invalid_input(who + "needs at least two layers (first and last)");
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            packed_kbit_dense const& l = layers_[i];
            bool const last = i + 1 == layers_.size();
            if (l.logits() != last)
                throw invalid_input(who + "layer " + std::to_string(i) + (last ? " must write logits" : " must write codes"));
            if (i > 0 && l.in() != layers_[i - 1].out())
                throw invalid_input(who + "layer " + std::to_string(i) + " reads " + std::to_string(l.in()) +
                                    " features, layer " + std::to_string(i - 1) + " writes " +
                                    std::to_string(layers_[i - 1].out()));
        }
    }

    deploy::input_map const& input() const noexcept { return input_; }
    std::span<packed_kbit_dense const> layers() const noexcept { return layers_; }
    std::size_t inputs() const noexcept { return layers_.empty() ? 0 : layers_.front().in(); }
    std::size_t classes() const noexcept { return layers_.empty() ? 0 : layers_.back().out(); }

    /// @brief The input codes of float input @p x [batch, inputs].
    /// @throws invalid_input for a wrong width or a NaN value.
    xt::xtensor<std::uint8_t, 2> quantize(xt::xtensor<float, 2> const& x) const
    {
        check_width(x.shape(1));
        xt::xtensor<std::uint8_t, 2> q = xt::xtensor<std::uint8_t, 2>::from_shape(x.shape());
        input_.quantize(x.data(), x.size(), q.data());
        return q;
    }

    /// @brief Logits [batch, classes] of float input [batch, inputs].
    xt::xtensor<float, 2> forward(xt::xtensor<float, 2> const& x) const { return forward(quantize(x)); }

    /// @brief Logits [batch, classes] of input codes [batch, inputs].
    xt::xtensor<float, 2> forward(xt::xtensor<std::uint8_t, 2> const& codes) const
    {
        xt::xtensor<std::uint8_t, 2> const h = run(codes, layers_.size() - 1);
        packed_kbit_dense const& last = layers_.back();
        std::size_t const m = h.shape(0);
        xt::xtensor<float, 2> logits = xt::xtensor<float, 2>::from_shape({m, last.out()});
        last.forward(kernels::matrix_view<std::uint8_t>{h.data(), m, last.in(), last.in()}, logits.data(), last.out());
        return logits;
    }

    /// @brief The k-bit codes [batch, width] written by layer @p layer (< layers().size() - 1) for input codes
    /// [batch, inputs] (for diagnostics and tests: the fake-quant activation is alpha / n times the code).
    xt::xtensor<std::uint8_t, 2> codes(xt::xtensor<std::uint8_t, 2> const& input_codes, std::size_t layer) const
    {
        if (layer + 1 >= layers_.size())
            throw invalid_input("lowbit::deploy::packed_kbit_mlp::codes: layer " + std::to_string(layer) +
                                " writes no codes");
        return run(input_codes, layer + 1);
    }

private:
    void check_width(std::size_t width) const
    {
        if (width != inputs())
            throw invalid_input("lowbit::deploy::packed_kbit_mlp: shape mismatch: expected " + std::to_string(inputs()) +
                                " input features, got " + std::to_string(width));
    }

    /// The codes written by layers 0 .. count - 1 (the input codes for count 0).
    xt::xtensor<std::uint8_t, 2> run(xt::xtensor<std::uint8_t, 2> const& codes, std::size_t count) const
    {
        check_width(codes.shape(1));
        std::size_t const m = codes.shape(0);
        xt::xtensor<std::uint8_t, 2> a = codes;
        for (std::size_t i = 0; i < count; ++i) {
            packed_kbit_dense const& l = layers_[i];
            xt::xtensor<std::uint8_t, 2> b = xt::xtensor<std::uint8_t, 2>::from_shape({m, l.out()});
            l.forward(kernels::matrix_view<std::uint8_t>{a.data(), m, l.in(), l.in()}, b.data(), l.out());
            a = std::move(b);
        }
        return a;
    }

    deploy::input_map input_{};
    std::vector<packed_kbit_dense> layers_;
};

} // namespace lowbit::deploy
