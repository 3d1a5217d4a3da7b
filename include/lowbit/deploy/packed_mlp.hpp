// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::packed_mlp: a packed inference model of a binarized MLP, as deploy::compile makes it from a
/// trained nn::mlp and deploy::load_packed reads it: an input map (float -> 8-bit codes), a first layer on
/// those codes, hidden layers on sign bits, and a last layer that writes float logits. Between layers the
/// activations stay bit-packed (64 per word); BatchNorm and sign are per-channel integer thresholds.
///
/// @code
/// lowbit::deploy::packed_mlp const packed = lowbit::deploy::compile(model);   // or load_packed(file)
/// xt::xtensor<float, 2> const logits = packed.forward(images);             // [batch, classes]
/// @endcode
///
/// forward() is const and keeps no state between calls (its buffers are per call), so one model may serve
/// several threads; each call runs the kernels on lowbit's thread pool (lowbit::set_num_threads).

#include <lowbit/config.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/matrix_view.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief A packed binarized MLP; see the file comment.
class packed_mlp {
public:
    packed_mlp() = default;

    /// @brief Chains @p layers behind @p input.
    /// @throws invalid_input unless there are at least two layers, the first reads input codes, every later
    /// one sign bits, only the last writes logits, and each layer's inputs are the previous one's outputs.
    packed_mlp(deploy::input_map input, std::vector<packed_dense> layers) : input_(input), layers_(std::move(layers))
    {
        input_.check();
        std::string const who = "lowbit::deploy::packed_mlp: ";
        if (layers_.size() < 2) throw invalid_input(who + "needs at least two layers (first and last)");
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            packed_dense const& l = layers_[i];
            bool const first = i == 0, last = i + 1 == layers_.size();
            if ((l.input() == layer_input::codes) != first)
                throw invalid_input(who + "layer " + std::to_string(i) +
                                    (first ? " must read the input codes" : " must read sign bits"));
            if (l.logits() != last)
                throw invalid_input(who + "layer " + std::to_string(i) +
                                    (last ? " must write logits" : " must write sign bits"));
            if (!first && l.in() != layers_[i - 1].out())
                throw invalid_input(who + "layer " + std::to_string(i) + " reads " + std::to_string(l.in()) +
                                    " features, layer " + std::to_string(i - 1) + " writes " +
                                    std::to_string(layers_[i - 1].out()));
        }
    }

    deploy::input_map const& input() const noexcept { return input_; }
    std::span<packed_dense const> layers() const noexcept { return layers_; }
    std::size_t inputs() const noexcept { return layers_.empty() ? 0 : layers_.front().in(); }
    std::size_t classes() const noexcept { return layers_.empty() ? 0 : layers_.back().out(); }

    /// @brief The input codes of float input @p x [batch, inputs] (input().code of every value).
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
        std::size_t const m = codes.shape(0);
        std::vector<std::uint64_t> a, b;
        run_signs(codes, layers_.size() - 1, a, b);
        packed_dense const& last = layers_.back();
        xt::xtensor<float, 2> logits = xt::xtensor<float, 2>::from_shape({m, last.out()});
        std::size_t const words = kernels::words_for_bits(last.in());
        last.forward(kernels::bit_matrix_view{a.data(), m, last.in(), words}, logits.data(), last.out());
        return logits;
    }

    /// @brief The sign bits written by layer @p layer (< layers().size() - 1) for input codes [batch, inputs]:
    /// [batch, ceil(width / 64)] words, bit 1 = +1 (for diagnostics and tests).
    xt::xtensor<std::uint64_t, 2> signs(xt::xtensor<std::uint8_t, 2> const& codes, std::size_t layer) const
    {
        if (layer + 1 >= layers_.size())
            throw invalid_input("lowbit::deploy::packed_mlp::signs: layer " + std::to_string(layer) +
                                " writes no sign bits");
        std::vector<std::uint64_t> a, b;
        run_signs(codes, layer + 1, a, b);
        std::size_t const words = kernels::words_for_bits(layers_[layer].out());
        xt::xtensor<std::uint64_t, 2> out = xt::xtensor<std::uint64_t, 2>::from_shape({codes.shape(0), words});
        std::copy(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(out.size()), out.begin());
        return out;
    }

private:
    void check_width(std::size_t width) const
    {
        if (width != inputs())
            throw invalid_input("lowbit::deploy::packed_mlp: shape mismatch: expected " + std::to_string(inputs()) +
                                " input features, got " + std::to_string(width));
    }

    /// Runs layers 0 .. count - 1 (all writing sign bits); their last output is left in @p a.
    void run_signs(xt::xtensor<std::uint8_t, 2> const& codes, std::size_t count, std::vector<std::uint64_t>& a,
                   std::vector<std::uint64_t>& b) const
    {
        check_width(codes.shape(1));
        std::size_t const m = codes.shape(0), k = codes.shape(1);
        for (std::size_t i = 0; i < count; ++i) {
            packed_dense const& l = layers_[i];
            std::size_t const words = kernels::words_for_bits(l.out());
            b.resize(m * words);
            if (i == 0)
                l.forward(kernels::matrix_view<std::uint8_t>{codes.data(), m, k, k}, b.data(), words);
            else
                l.forward(kernels::bit_matrix_view{a.data(), m, l.in(), kernels::words_for_bits(l.in())}, b.data(),
                          words);
            std::swap(a, b);
        }
    }

    deploy::input_map input_{};
    std::vector<packed_dense> layers_;
};

} // namespace lowbit::deploy
