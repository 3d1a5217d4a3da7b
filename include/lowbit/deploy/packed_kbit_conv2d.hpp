// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::packed_kbit_conv2d: one convolution of a packed CNN with k-bit PACT activations, BatchNorm +
/// ReLU + PACT folded into per-channel level thresholds (deploy/level_thresholds.hpp). It reads 8-bit codes --
/// the input map's codes in the first layer, PACT's k-bit codes 0..2^k - 1 after it -- as NHWC rows (one row
/// per pixel, its C channels' codes, one byte each), and writes the next k-bit codes as NHWC rows of `filters`
/// bytes, so layers chain without conversion. Weights are packed_weights with one row per filter and the patch
/// in (ky, kx, c) order, binary (+-1) or odd levels 2c + 1; the product is an im2col of the codes and
/// kernels::int8_gemm (u8 x s8, exact int32; deploy/detail/code_conv.hpp).
///
/// Zero padding. nn::conv2d pads with 0.0; im2col writes code 0 at padded taps, so v sums the valid taps.
/// - After a PACT, code 0 is the value 0.0, so v is exactly the zero-padded sum: one set of thresholds.
/// - On the input map's codes, code 0 is `offset`, not 0.0 (unless offset is 0), so the float model's
///   pre-activation is y_j = (scale v + offset D_j(class)) step_j with D_j(class) the sum of filter j's levels
///   over the valid taps of the output pixel's padding class (deploy/padding_classes.hpp): one set of
///   thresholds per class, as deploy::packed_conv2d's first layer.
///
/// @code
/// lowbit::kernels::binary_conv2d_shape const s{.channels = 16, .height = 28, .width = 28, .filters = 16,
///                                              .kernel = 3, .padding = 1};
/// lowbit::deploy::packed_kbit_conv2d const conv(s, std::move(weights), {std::move(thresholds)});
/// conv.forward(lowbit::kernels::matrix_view<std::uint8_t>{x, batch * 28 * 28, 16, 16}, batch, y, 16);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/detail/code_conv.hpp>
#include <lowbit/deploy/detail/scratch.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/padding_classes.hpp>
#include <lowbit/kernels/binary_conv2d.hpp>
#include <lowbit/kernels/int8_gemm.hpp>
#include <lowbit/kernels/matrix_view.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief One packed convolution on 8-bit codes that writes k-bit codes; see the file comment.
class packed_kbit_conv2d {
public:
    packed_kbit_conv2d() = default;

    /// @brief A convolution of geometry @p shape (channels, height, width, filters, kernel, stride, padding)
    /// with weights @p w (filters x kernel^2 channels, patch order (ky, kx, c)) and thresholds @p t: one set for
    /// every output pixel, or one per padding class (padding_classes::of(shape), in its order).
    /// @throws invalid_input for an inconsistent geometry, weights or thresholds, or sums that could leave int32.
    packed_kbit_conv2d(kernels::binary_conv2d_shape const& shape, packed_weights w, std::vector<level_thresholds> t)
        : shape_(shape), w_(std::move(w)), t_(std::move(t))
    {
        kernels::binary_conv2d_shape const& s = shape_;
        detail::check_conv_geometry(who(), s, w_);
        detail::check_code_weights(w_, who());
        classes_ = padding_classes::of(shape_);
        if (t_.size() != 1 && t_.size() != classes_.count())
            throw invalid_input(who() + std::to_string(t_.size()) + " sets of thresholds, expected 1 or " +
                                std::to_string(classes_.count()) + " (one per padding class)");
        for (level_thresholds const& l : t_)
            if (!l.fits(s.filters) || l.levels != t_.front().levels)
                throw invalid_input(who() + std::to_string(l.threshold.size()) + " thresholds of " +
                                    std::to_string(l.levels) + " levels for " + std::to_string(s.filters) +
                                    " filters (every set: filters x the same levels, 1..255)");
        i8_ = detail::int8_weights(w_);
        for (level_thresholds const& l : t_) tables_.emplace_back(l);
    }

    kernels::binary_conv2d_shape const& shape() const noexcept { return shape_; }
    packed_weights const& weights() const noexcept { return w_; }
    std::span<level_thresholds const> thresholds() const noexcept { return t_; }
    padding_classes const& classes() const noexcept { return classes_; }
    /// @brief The largest output code (2^k - 1).
    int levels() const noexcept { return t_.empty() ? 0 : t_.front().levels; }
    /// @brief Output pixels of one image.
    std::size_t out_pixels() const noexcept { return shape_.out_height() * shape_.out_width(); }

    /// @brief Output codes (batch * out_pixels() rows of @p ldy bytes, ldy >= filters; NHWC) of input codes
    /// @p x: batch * H * W rows (NHWC) of C codes.
    void forward(kernels::matrix_view<std::uint8_t> x, std::size_t batch, std::uint8_t* y, std::size_t ldy) const
    {
        expect(x, batch);
        if (ldy < shape_.filters) throw invalid_input(who() + "code rows shorter than the filters");
        std::size_t const pixels = out_pixels(), filters = shape_.filters;
        detail::for_image_chunks(batch, out_pixels(), [&](std::size_t n0, std::size_t n) {
            std::vector<std::int32_t>& v = scratch<std::int32_t, 0>(n * pixels * filters);
            detail::code_conv_integers(shape_, w_, i8_, x, n0, n, scratch<std::uint8_t, 1>(0), v.data());
            for (std::size_t r = 0; r < n * pixels; ++r) {
                detail::level_table const& t =
                    tables_.size() == 1 ? tables_.front() : tables_[classes_.pixel_class[r % pixels]];
                t.codes(v.data() + r * filters, y + (n0 * pixels + r) * ldy);
            }
        });
    }

    /// @brief The integer results v (batch * out_pixels() rows of filters, @p ldv apart) of input codes @p x:
    /// the sums over the valid taps, for tests and diagnostics.
    void integers(kernels::matrix_view<std::uint8_t> x, std::size_t batch, std::int64_t* v, std::size_t ldv) const
    {
        expect(x, batch);
        std::size_t const pixels = out_pixels(), filters = shape_.filters;
        detail::for_image_chunks(batch, out_pixels(), [&](std::size_t n0, std::size_t n) {
            std::vector<std::int32_t>& r = scratch<std::int32_t, 0>(n * pixels * filters);
            detail::code_conv_integers(shape_, w_, i8_, x, n0, n, scratch<std::uint8_t, 1>(0), r.data());
            for (std::size_t i = 0; i < n * pixels; ++i)
                std::copy(r.data() + i * filters, r.data() + (i + 1) * filters, v + (n0 * pixels + i) * ldv);
        });
    }

private:
    static std::string who() { return "lowbit::deploy::packed_kbit_conv2d: "; }

    void expect(kernels::matrix_view<std::uint8_t> const& x, std::size_t batch) const
    {
        if (x.cols != shape_.channels || x.rows != batch * shape_.height * shape_.width || x.ld < x.cols)
            throw invalid_input(who() + "shape mismatch: expected " + std::to_string(batch) + " x " +
                                std::to_string(shape_.height) + " x " + std::to_string(shape_.width) +
                                " pixel rows of " + std::to_string(shape_.channels) + " channels, got " +
                                std::to_string(x.rows) + " rows of " + std::to_string(x.cols));
    }

    template <class T, int Slot>
    static std::vector<T>& scratch(std::size_t n)
    {
        return detail::scratch<packed_kbit_conv2d, T, Slot>(n);
    }

    kernels::binary_conv2d_shape shape_{};
    packed_weights w_;
    std::vector<level_thresholds> t_;
    std::vector<detail::level_table> tables_;  // t_, laid out for the output loop
    padding_classes classes_;
    kernels::int8_packed_b i8_;
};

} // namespace lowbit::deploy
