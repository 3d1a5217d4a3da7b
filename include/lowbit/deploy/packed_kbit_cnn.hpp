// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::packed_kbit_cnn: a packed inference model of a CNN with k-bit PACT activations, as
/// deploy::compile makes it from a trained `nn::cnn(o, W, First, Last, ste::pact<Bits>{...}, nn::bias_head)`
/// and deploy::load_packed_kbit_cnn reads it: an input map (float -> 8-bit codes), convolutions
/// (deploy::packed_kbit_conv2d) that write k-bit codes, each optionally followed by max pooling on the codes
/// (deploy::code_max_pool), then the feature map flattened and dense layers (deploy::packed_kbit_dense; the
/// last writes float logits). Between layers the activations are one byte per value, the int8 kernel's
/// unsigned operand.
///
/// Layout: feature maps are NHWC code rows, so an image's codes are already flattened in (y, x, c) order;
/// nn::flatten orders the float features (c, y, x), and compile() permutes the first dense layer's weight
/// columns to match.
///
/// @code
/// lowbit::deploy::packed_kbit_cnn const packed = lowbit::deploy::compile(pact_cnn);
/// xt::xtensor<float, 2> const logits = packed.forward(images);     // [batch, C, H, W] -> [batch, classes]
/// @endcode
///
/// forward() is const and keeps no state between calls (its buffers are per call or per thread), so one model
/// may serve several threads; the int8 kernel runs on lowbit's thread pool (lowbit::set_num_threads).

#include <lowbit/config.hpp>
#include <lowbit/deploy/code_max_pool.hpp>
#include <lowbit/deploy/detail/cnn_chain.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/packed_kbit_conv2d.hpp>
#include <lowbit/deploy/packed_kbit_dense.hpp>
#include <lowbit/deploy/pool_window.hpp>
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

/// @brief A packed CNN with k-bit activations; see the file comment.
class packed_kbit_cnn {
public:
    packed_kbit_cnn() = default;

    /// @brief Chains @p convs (each followed by the pooling of the same index in @p pools; kernel 0 for none)
    /// and @p dense behind @p input.
    /// @throws invalid_input unless there is at least one convolution and one dense layer, only the first
    /// convolution has thresholds per padding class, only the last dense layer writes logits, and each layer
    /// reads what the previous one writes (channels and size, and the flattened width).
    packed_kbit_cnn(deploy::input_map input, std::vector<packed_kbit_conv2d> convs, std::vector<pool_window> pools,
                    std::vector<packed_kbit_dense> dense)
        : input_(input), convs_(std::move(convs)), pools_(std::move(pools)), dense_(std::move(dense))
    {
        input_.check();
        std::string const who = "lowbit::deploy::packed_kbit_cnn: ";
        if (convs_.empty() || dense_.empty())
            throw invalid_input(who + "needs at least one convolution and one dense layer");
        // After a PACT, code 0 is 0.0: zero padding needs no per-class thresholds.
        for (std::size_t i = 1; i < convs_.size(); ++i)
            if (convs_[i].thresholds().size() != 1)
                throw invalid_input(who + "convolution " + std::to_string(i) +
                                    " reads k-bit codes and has one set of thresholds, not " +
                                    std::to_string(convs_[i].thresholds().size()));
        detail::feature_map const flat = detail::chain_convs<packed_kbit_conv2d>(who, convs_, pools_);
        detail::chain_dense<packed_kbit_dense>(who, dense_, flat.c * flat.h * flat.w, "codes");
    }

    deploy::input_map const& input() const noexcept { return input_; }
    std::span<packed_kbit_conv2d const> convs() const noexcept { return convs_; }
    std::span<pool_window const> pools() const noexcept { return pools_; }
    std::span<packed_kbit_dense const> dense() const noexcept { return dense_; }
    std::size_t channels() const noexcept { return convs_.empty() ? 0 : convs_.front().shape().channels; }
    std::size_t height() const noexcept { return convs_.empty() ? 0 : convs_.front().shape().height; }
    std::size_t width() const noexcept { return convs_.empty() ? 0 : convs_.front().shape().width; }
    std::size_t classes() const noexcept { return dense_.empty() ? 0 : dense_.back().out(); }
    /// @brief Layers that write k-bit codes (codes() takes their index): the convolutions, then every dense
    /// layer but the last.
    std::size_t code_layers() const noexcept { return convs_.size() + dense_.size() - 1; }

    /// @brief The input codes [batch, C, H, W] of float images [batch, C, H, W] (input().code of every value).
    /// @throws invalid_input for a wrong shape or a NaN value.
    xt::xtensor<std::uint8_t, 4> quantize(xt::xtensor<float, 4> const& x) const
    {
        check_shape(x.shape());
        xt::xtensor<std::uint8_t, 4> q = xt::xtensor<std::uint8_t, 4>::from_shape(x.shape());
        input_.quantize(x.data(), x.size(), q.data());
        return q;
    }

    /// @brief Logits [batch, classes] of float images [batch, C, H, W].
    xt::xtensor<float, 2> forward(xt::xtensor<float, 4> const& x) const { return forward(quantize(x)); }

    /// @brief Logits [batch, classes] of input codes [batch, C, H, W].
    xt::xtensor<float, 2> forward(xt::xtensor<std::uint8_t, 4> const& codes) const
    {
        check_shape(codes.shape());
        std::size_t const m = codes.shape(0);
        std::vector<std::uint8_t> a;
        run(codes, code_layers(), a);
        packed_kbit_dense const& last = dense_.back();
        xt::xtensor<float, 2> logits = xt::xtensor<float, 2>::from_shape({m, last.out()});
        last.forward(kernels::matrix_view<std::uint8_t>{a.data(), m, last.in(), last.in()}, logits.data(), last.out());
        return logits;
    }

    /// @brief The k-bit codes of every code layer from one pass of input codes [batch, C, H, W], for
    /// diagnostics and tests (the fake-quant activation is alpha / n times the code): for a convolution, before
    /// its pooling, [batch * out_height * out_width, filters] (NHWC rows); for a dense layer, [batch, out].
    std::vector<xt::xtensor<std::uint8_t, 2>> trace(xt::xtensor<std::uint8_t, 4> const& codes) const
    {
        check_shape(codes.shape());
        std::vector<std::uint8_t> a;
        std::vector<xt::xtensor<std::uint8_t, 2>> out;
        run(codes, code_layers(), a, &out);
        return out;
    }

private:
    template <class Shape>
    void check_shape(Shape const& s) const
    {
        detail::check_images("lowbit::deploy::packed_kbit_cnn: ", s, {channels(), height(), width()});
    }

    static xt::xtensor<std::uint8_t, 2> copy_rows(std::vector<std::uint8_t> const& a, std::size_t rows,
                                                  std::size_t cols)
    {
        xt::xtensor<std::uint8_t, 2> out = xt::xtensor<std::uint8_t, 2>::from_shape({rows, cols});
        std::copy(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(out.size()), out.begin());
        return out;
    }

    /// Runs the first @p stop code layers (every convolution with its pooling, then stop - convs dense layers;
    /// stop >= convs) and leaves their codes in @p a; with @p trace, a copy of every code layer's output.
    void run(xt::xtensor<std::uint8_t, 4> const& codes, std::size_t stop, std::vector<std::uint8_t>& a,
             std::vector<xt::xtensor<std::uint8_t, 2>>* trace = nullptr) const
    {
        std::size_t const m = codes.shape(0), c0 = channels(), plane = height() * width();
        a.resize(codes.size());
        detail::nchw_to_nhwc(codes.data(), m, c0, plane, a.data());
        std::vector<std::uint8_t> b;
        for (std::size_t i = 0; i < convs_.size(); ++i) {
            packed_kbit_conv2d const& conv = convs_[i];
            kernels::binary_conv2d_shape const& s = conv.shape();
            std::size_t const rows = m * conv.out_pixels();
            b.resize(rows * s.filters);
            conv.forward(kernels::matrix_view<std::uint8_t>{a.data(), m * s.height * s.width, s.channels, s.channels},
                         m, b.data(), s.filters);
            std::swap(a, b);
            if (trace != nullptr) trace->push_back(copy_rows(a, rows, s.filters));
            if (!pools_[i].none()) {
                pool_window const p = pools_[i];
                b.resize(m * p.out(s.out_height()) * p.out(s.out_width()) * s.filters);
                code_max_pool(kernels::matrix_view<std::uint8_t>{a.data(), rows, s.filters, s.filters}, m,
                              s.out_height(), s.out_width(), p, b.data(), s.filters);
                std::swap(a, b);
            }
        }
        // Flattening is free: an image's NHWC rows are its features in (y, x, c) order, back to back.
        for (std::size_t i = 0; i + convs_.size() < stop; ++i) {
            packed_kbit_dense const& l = dense_[i];
            b.resize(m * l.out());
            l.forward(kernels::matrix_view<std::uint8_t>{a.data(), m, l.in(), l.in()}, b.data(), l.out());
            std::swap(a, b);
            if (trace != nullptr) trace->push_back(copy_rows(a, m, l.out()));
        }
    }

    deploy::input_map input_{};
    std::vector<packed_kbit_conv2d> convs_;
    std::vector<pool_window> pools_;
    std::vector<packed_kbit_dense> dense_;
};

} // namespace lowbit::deploy
