// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::packed_cnn: a packed inference model of a binarized CNN, as deploy::compile makes it from a
/// trained nn::cnn and deploy::load_packed_cnn reads it: an input map (float -> 8-bit codes), convolutions
/// (deploy::packed_conv2d; the first on the codes, the others on sign bits), each optionally followed by max
/// pooling on the sign bits (deploy::sign_max_pool), then the feature map flattened and dense layers
/// (deploy::packed_dense; the last writes float logits). Between layers the activations stay bit-packed.
///
/// Layout: feature maps are NHWC bit rows (one row per pixel, its channels' bits), so flattening gives bit
/// (y * W + x) * C + c of an image's row; nn::flatten orders the float features (c, y, x), and compile()
/// permutes the first dense layer's weight columns to match.
///
/// @code
/// lowbit::deploy::packed_cnn const packed = lowbit::deploy::compile(cnn);       // or load_packed_cnn(file)
/// xt::xtensor<float, 2> const logits = packed.forward(images);                 // [batch, C, H, W] -> [batch, classes]
/// @endcode
///
/// forward() is const and keeps no state between calls (its buffers are per call or per thread), so one model
/// may serve several threads; the kernels run on lowbit's thread pool (lowbit::set_num_threads).

#include <lowbit/config.hpp>
#include <lowbit/deploy/detail/cnn_chain.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/packed_conv2d.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/sign_max_pool.hpp>
#include <lowbit/kernels/binary_conv2d.hpp>
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

/// @brief A packed binarized CNN; see the file comment.
class packed_cnn {
public:
    packed_cnn() = default;

    /// @brief Chains @p convs (each followed by the pooling of the same index in @p pools; kernel 0 for none)
    /// and @p dense behind @p input.
    /// @throws invalid_input unless there is at least one convolution and one dense layer, the first
    /// convolution reads input codes and every other layer sign bits, only the last dense layer writes logits,
    /// and each layer reads what the previous one writes (channels and size, and the flattened width).
    packed_cnn(deploy::input_map input, std::vector<packed_conv2d> convs, std::vector<pool_window> pools,
               std::vector<packed_dense> dense)
        : input_(input), convs_(std::move(convs)), pools_(std::move(pools)), dense_(std::move(dense))
    {
        input_.check();
        std::string const who = "lowbit::deploy::packed_cnn: ";
        if (convs_.empty() || dense_.empty())
            throw invalid_input(who + "needs at least one convolution and one dense layer");
        for (std::size_t i = 0; i < convs_.size(); ++i)
            if ((convs_[i].input() == layer_input::codes) != (i == 0))
                throw invalid_input(who + "convolution " + std::to_string(i) +
                                    (i == 0 ? " must read the input codes" : " must read sign bits"));
        flat_ = detail::chain_convs<packed_conv2d>(who, convs_, pools_);
        for (std::size_t i = 0; i < dense_.size(); ++i)
            if (dense_[i].input() != layer_input::signs)
                throw invalid_input(who + "dense layer " + std::to_string(i) + " must read sign bits");
        detail::chain_dense<packed_dense>(who, dense_, flat_.c * flat_.h * flat_.w, "sign bits");
    }

    deploy::input_map const& input() const noexcept { return input_; }
    std::span<packed_conv2d const> convs() const noexcept { return convs_; }
    std::span<pool_window const> pools() const noexcept { return pools_; }
    std::span<packed_dense const> dense() const noexcept { return dense_; }
    std::size_t channels() const noexcept { return convs_.empty() ? 0 : convs_.front().shape().channels; }
    std::size_t height() const noexcept { return convs_.empty() ? 0 : convs_.front().shape().height; }
    std::size_t width() const noexcept { return convs_.empty() ? 0 : convs_.front().shape().width; }
    std::size_t classes() const noexcept { return dense_.empty() ? 0 : dense_.back().out(); }
    /// @brief Layers that write sign bits (signs() takes their index): the convolutions, then every dense
    /// layer but the last.
    std::size_t sign_layers() const noexcept { return convs_.size() + dense_.size() - 1; }

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
        std::vector<std::uint64_t> a, b;
        run(codes, sign_layers(), a, b);
        packed_dense const& last = dense_.back();
        xt::xtensor<float, 2> logits = xt::xtensor<float, 2>::from_shape({m, last.out()});
        kernels::bit_matrix_view const x{a.data(), m, last.in(), kernels::words_for_bits(last.in())};
        last.forward(x, logits.data(), last.out());
        return logits;
    }

    /// @brief The sign bits written by layer @p layer (< sign_layers()) for input codes [batch, C, H, W], for
    /// diagnostics and tests: for a convolution, before its pooling, [batch * out_height * out_width,
    /// ceil(filters / 64)] (NHWC rows); for a dense layer, [batch, ceil(out / 64)]. Bit 1 = +1.
    xt::xtensor<std::uint64_t, 2> signs(xt::xtensor<std::uint8_t, 4> const& codes, std::size_t layer) const
    {
        check_shape(codes.shape());
        if (layer >= sign_layers())
            throw invalid_input("lowbit::deploy::packed_cnn::signs: layer " + std::to_string(layer) +
                                " writes no sign bits (there are " + std::to_string(sign_layers()) + ")");
        std::vector<std::uint64_t> a, b;
        std::size_t const m = codes.shape(0);
        std::size_t rows = m, words = 0;
        if (layer < convs_.size()) {
            run(codes, layer, a, b, /*stop_before_pool=*/true);
            rows = m * convs_[layer].out_pixels();
            words = convs_[layer].out_words();
        } else {
            run(codes, layer + 1, a, b);
            words = kernels::words_for_bits(dense_[layer - convs_.size()].out());
        }
        xt::xtensor<std::uint64_t, 2> out = xt::xtensor<std::uint64_t, 2>::from_shape({rows, words});
        std::copy(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(out.size()), out.begin());
        return out;
    }

    /// @brief The sign bits of every sign layer (signs(codes, i) for i < sign_layers()) from one pass.
    std::vector<xt::xtensor<std::uint64_t, 2>> trace(xt::xtensor<std::uint8_t, 4> const& codes) const
    {
        check_shape(codes.shape());
        std::vector<std::uint64_t> a, b;
        std::vector<xt::xtensor<std::uint64_t, 2>> out;
        run(codes, sign_layers(), a, b, false, &out);
        return out;
    }

private:
    /// A copy of @p rows rows of @p words words of @p a, for trace().
    static xt::xtensor<std::uint64_t, 2> copy_bits(std::vector<std::uint64_t> const& a, std::size_t rows,
                                                   std::size_t words)
    {
        xt::xtensor<std::uint64_t, 2> out = xt::xtensor<std::uint64_t, 2>::from_shape({rows, words});
        std::copy(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(out.size()), out.begin());
        return out;
    }

    template <class Shape>
    void check_shape(Shape const& s) const
    {
        detail::check_images("lowbit::deploy::packed_cnn: ", s, {channels(), height(), width()});
    }

    /// Runs the layers up to @p stop: with stop_before_pool, convolution @p stop without its pooling (stop <
    /// convs); otherwise the first @p stop sign layers (every convolution with its pooling, then the flattening
    /// and stop - convs dense layers; stop >= convs). The bits are left in @p a; with @p trace, a copy of every
    /// sign layer's output is appended to it.
    void run(xt::xtensor<std::uint8_t, 4> const& codes, std::size_t stop, std::vector<std::uint64_t>& a,
             std::vector<std::uint64_t>& b, bool stop_before_pool = false,
             std::vector<xt::xtensor<std::uint64_t, 2>>* trace = nullptr) const
    {
        std::size_t const m = codes.shape(0), c0 = channels(), plane = height() * width();
        // NCHW codes -> NHWC rows of C codes, the rows the first convolution's im2col copies.
        std::vector<std::uint8_t> nhwc(codes.size());
        detail::nchw_to_nhwc(codes.data(), m, c0, plane, nhwc.data());
        for (std::size_t i = 0; i < convs_.size(); ++i) {
            packed_conv2d const& conv = convs_[i];
            kernels::binary_conv2d_shape const& s = conv.shape();
            std::size_t const words = conv.out_words(), rows = m * conv.out_pixels();
            b.assign(rows * words, 0);
            if (i == 0)
                conv.forward(kernels::matrix_view<std::uint8_t>{nhwc.data(), m * plane, c0, c0}, m, b.data(), words);
            else
                conv.forward(kernels::bit_matrix_view{a.data(), m * s.height * s.width, s.channels,
                                                      kernels::words_for_bits(s.channels)},
                             m, b.data(), words);
            std::swap(a, b);
            if (trace != nullptr) trace->push_back(copy_bits(a, rows, words));
            if (stop_before_pool && i == stop) return;
            if (!pools_[i].none()) {
                pool_window const p = pools_[i];
                b.assign(m * p.out(s.out_height()) * p.out(s.out_width()) * words, 0);
                sign_max_pool(kernels::bit_matrix_view{a.data(), rows, s.filters, words}, m, s.out_height(),
                              s.out_width(), p, b.data(), words);
                std::swap(a, b);
            }
        }
        // Flatten: pixel p's channel bits go to bits p * C .. p * C + C - 1 of the image's row.
        auto const [c, h, w] = flat_;
        std::size_t const pixels = h * w, in_words = kernels::words_for_bits(c), flat = c * pixels;
        std::size_t const flat_words = kernels::words_for_bits(flat);
        b.assign(m * flat_words, 0);
        for (std::size_t n = 0; n < m; ++n)
            for (std::size_t p = 0; p < pixels; ++p)
                kernels::detail::or_bits(b.data() + n * flat_words, p * c, a.data() + (n * pixels + p) * in_words, c);
        std::swap(a, b);
        for (std::size_t i = 0; i + convs_.size() < stop; ++i) {
            packed_dense const& l = dense_[i];
            std::size_t const words = kernels::words_for_bits(l.out());
            b.assign(m * words, 0);
            l.forward(kernels::bit_matrix_view{a.data(), m, l.in(), kernels::words_for_bits(l.in())}, b.data(), words);
            std::swap(a, b);
            if (trace != nullptr) trace->push_back(copy_bits(a, m, words));
        }
    }

    deploy::input_map input_{};
    std::vector<packed_conv2d> convs_;
    std::vector<pool_window> pools_;
    std::vector<packed_dense> dense_;
    detail::feature_map flat_{};
};

} // namespace lowbit::deploy
