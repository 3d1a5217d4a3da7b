// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::packed_conv2d: one convolution of a packed CNN, BatchNorm + sign folded into integer
/// thresholds, run on the integer kernels. It reads 8-bit input codes (the first layer) or sign bits (every
/// later layer), both as NHWC rows (one row per pixel, holding its C channels), and writes sign bits as NHWC
/// rows of ceil(filters / 64) words (bit 1 = +1) -- the layout kernels::binary_conv2d reads, so layers chain
/// without conversion. Weights are packed_weights with one row per filter and the patch in (ky, kx, c) order.
///
/// | input   | weights        | how                                             | integer result v    |
/// |---------|----------------|-------------------------------------------------|---------------------|
/// | codes q | binary s = +-1 | im2col of the u8 codes, int8_gemm (u8 x +-1)    | sum_taps q s        |
/// | codes q | levels 2c + 1  | im2col of the u8 codes, int8_gemm (u8 x s8 c)   | 2 sum q c + sum q   |
/// | signs x | binary s = +-1 | binary_conv2d (im2col into bits, XNOR-popcount) | sum_taps x s        |
/// | signs x | levels 2c + 1  | binary_conv2d over the B bit planes of c        | sum_b w_b (x . t_b) |
///
/// Zero padding. nn::conv2d pads with 0.0, which is neither +1 nor -1 and, for the first layer, not the
/// code of 0 unless the input map's offset is 0. Both cases are exact:
/// - sign bits: kernels::binary_conv2d gives padded taps the value 0 (it writes -1 and adds back, per output
///   pixel class and filter, the filter's weights over the padded taps), so v is the zero-padded sum;
/// - input codes: im2col writes code 0 at padded taps, so v sums the valid taps only, and the float model's
///   pre-activation is y_j = (scale v + offset D_j(class)) step_j, where D_j(class) is the sum of filter j's
///   levels over the valid taps of the output pixel's class (the set of taps inside the image: interior,
///   4 edges and 4 corners for a 3x3 kernel with padding 1). That term differs per class, so the first layer
///   has one set of thresholds per class (padding_classes), and each output pixel uses its class's.
///
/// @code
/// lowbit::kernels::binary_conv2d_shape const s{.channels = 16, .height = 28, .width = 28, .filters = 16,
///                                              .kernel = 3, .padding = 1};
/// lowbit::deploy::packed_conv2d const conv(lowbit::deploy::layer_input::signs, s, std::move(weights), {thresholds});
/// conv.forward(lowbit::kernels::bit_matrix_view{x, batch * 28 * 28, 16, 1}, batch, y, 1);
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/detail/code_conv.hpp>
#include <lowbit/deploy/detail/scratch.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/padding_classes.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/kernels/binary_conv2d.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/int8_gemm.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/kernels/matrix_view.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief One packed convolution with BatchNorm + sign; see the file comment.
class packed_conv2d {
public:
    packed_conv2d() = default;

    /// @brief A convolution of geometry @p shape (kernels::binary_conv2d_shape: channels, height, width,
    /// filters, kernel, stride, padding) reading @p input, with weights @p w (filters x kernel^2 channels, patch
    /// order (ky, kx, c)) and thresholds @p t: one per padding class for input codes (padding_classes::of(shape)),
    /// one for sign bits.
    /// @throws invalid_input for an inconsistent geometry, weights, thresholds, or sums that could leave int32.
    packed_conv2d(layer_input input, kernels::binary_conv2d_shape const& shape, packed_weights w,
                  std::vector<sign_thresholds> t)
        : input_(input), shape_(shape), w_(std::move(w)), t_(std::move(t))
    {
        check();
        classes_ = padding_classes::of(shape_);
        std::size_t const want = input_ == layer_input::codes ? classes_.count() : 1;
        if (t_.size() != want)
            throw invalid_input(who() + std::to_string(t_.size()) + " sets of thresholds, expected " +
                                std::to_string(want) +
                                (input_ == layer_input::codes ? " (one per padding class)" : " (sign-bit input)"));
        for (sign_thresholds const& s : t_)
            if (s.threshold.size() != shape_.filters || s.flip.size() != kernels::words_for_bits(shape_.filters))
                throw invalid_input(who() + std::to_string(s.threshold.size()) + " thresholds and " +
                                    std::to_string(s.flip.size()) + " flip words for " +
                                    std::to_string(shape_.filters) + " filters");
        pack();
    }

    layer_input input() const noexcept { return input_; }
    kernels::binary_conv2d_shape const& shape() const noexcept { return shape_; }
    packed_weights const& weights() const noexcept { return w_; }
    std::span<sign_thresholds const> thresholds() const noexcept { return t_; }
    padding_classes const& classes() const noexcept { return classes_; }
    /// @brief Output pixels of one image.
    std::size_t out_pixels() const noexcept { return shape_.out_height() * shape_.out_width(); }
    /// @brief Words of one output row (ceil(filters / 64)).
    std::size_t out_words() const noexcept { return kernels::words_for_bits(shape_.filters); }

    /// @brief Sign bits (batch * out_pixels() rows of @p ldy words) of input codes @p x: batch * H * W rows
    /// (NHWC) of C codes.
    void forward(kernels::matrix_view<std::uint8_t> x, std::size_t batch, std::uint64_t* y, std::size_t ldy) const
    {
        expect(layer_input::codes, x.rows, x.cols, batch);
        expect_ld(ldy);
        detail::for_image_chunks(batch, out_pixels(), [&](std::size_t n0, std::size_t n) {
            std::vector<std::int32_t>& v = scratch<std::int32_t, 0>(n * out_pixels() * shape_.filters);
            code_integers(x, n0, n, v.data());
            threshold_rows(v.data(), n * out_pixels(), y + n0 * out_pixels() * ldy, ldy);
        });
    }

    /// @brief Sign bits of input sign bits @p x: batch * H * W rows (NHWC) of C bits.
    void forward(kernels::bit_matrix_view x, std::size_t batch, std::uint64_t* y, std::size_t ldy) const
    {
        expect(layer_input::signs, x.rows, x.cols, batch);
        expect_ld(ldy);
        if (batch == 0) return;
        if (w_.binary()) {  // the kernel's fused output: corrections for the padding, then the thresholds
            kernels::binary_conv2d(conv_, x, batch, t_.front().output(y, ldy));
            return;
        }
        detail::for_image_chunks(batch, out_pixels(), [&](std::size_t n0, std::size_t n) {
            std::vector<std::int32_t>& v = scratch<std::int32_t, 0>(n * out_pixels() * shape_.filters);
            sign_integers(x, n0, n, v.data());
            threshold_rows(v.data(), n * out_pixels(), y + n0 * out_pixels() * ldy, ldy);
        });
    }

    /// @brief The integer results v (batch * out_pixels() rows of filters, @p ldv apart) of input codes @p x:
    /// the sums over the valid taps (padded taps are code 0), for tests and diagnostics.
    void integers(kernels::matrix_view<std::uint8_t> x, std::size_t batch, std::int64_t* v, std::size_t ldv) const
    {
        expect(layer_input::codes, x.rows, x.cols, batch);
        detail::for_image_chunks(batch, out_pixels(), [&](std::size_t n0, std::size_t n) {
            std::vector<std::int32_t>& r = scratch<std::int32_t, 0>(n * out_pixels() * shape_.filters);
            code_integers(x, n0, n, r.data());
            copy_rows(r.data(), n * out_pixels(), v + n0 * out_pixels() * ldv, ldv);
        });
    }
    /// @brief The integer results v of input sign bits @p x, zero-padded (padded taps contribute 0).
    void integers(kernels::bit_matrix_view x, std::size_t batch, std::int64_t* v, std::size_t ldv) const
    {
        expect(layer_input::signs, x.rows, x.cols, batch);
        detail::for_image_chunks(batch, out_pixels(), [&](std::size_t n0, std::size_t n) {
            std::vector<std::int32_t>& r = scratch<std::int32_t, 0>(n * out_pixels() * shape_.filters);
            sign_integers(x, n0, n, r.data());
            copy_rows(r.data(), n * out_pixels(), v + n0 * out_pixels() * ldv, ldv);
        });
    }

private:
    static std::string who() { return "lowbit::deploy::packed_conv2d: "; }

    void check() const
    {
        kernels::binary_conv2d_shape const& s = shape_;
        detail::check_conv_geometry(who(), s, w_);
        // The layer rules of a dense layer of `patch` inputs: bits, sizes, code ranges, int32 bounds.
        packed_weights probe = w_;
        probe.scale.assign(w_.out, 1.0f);
        try {
            if (input_ == layer_input::codes)
                (void)packed_dense(layer_input::codes, std::move(probe),
                                   sign_thresholds{std::vector<std::int32_t>(w_.out, 0),
                                                   std::vector<std::uint64_t>(kernels::words_for_bits(w_.out), 0)});
            else
                (void)packed_dense(layer_input::signs, std::move(probe), std::vector<float>(w_.out, 0.0f));
        } catch (invalid_input const& e) {
            std::string what = e.what();
            std::string const dense = "lowbit::deploy::packed_dense: ";
            if (what.starts_with(dense)) what.erase(0, dense.size());
            throw invalid_input(who() + what);
        }
    }

    void pack()
    {
        kernels::binary_conv2d_shape s = shape_;
        if (input_ == layer_input::codes) {
            i8_ = detail::int8_weights(w_);
        } else if (w_.binary()) {
            kernels::bit_matrix_view const signs{w_.signs.data(), w_.out, w_.in, w_.words()};
            conv_ = kernels::binary_conv2d_weights(s, signs);
        } else {
            // Plane b of filter j is filter b * filters + j: bit k is bit b of the code c_jk (two's complement).
            // The kernel's padding corrections apply to each plane, so each plane product is zero-padded too.
            // Integer levels add one filter of all +1 taps: its product is sum_k x_k over the patch's valid taps.
            std::size_t const planes = static_cast<std::size_t>(w_.bits), words = w_.words();
            std::size_t const filters = planes * w_.out + (w_.odd ? 0 : 1);
            std::vector<std::uint64_t> rows(filters * words, 0);
            for (std::size_t b = 0; b < planes; ++b)
                for (std::size_t j = 0; j < w_.out; ++j)
                    for (std::size_t k = 0; k < w_.in; ++k)
                        if (((static_cast<std::uint8_t>(w_.codes[j * w_.in + k]) >> b) & 1u) != 0)
                            rows[(b * w_.out + j) * words + k / 64] |= std::uint64_t{1} << (k % 64);
            if (!w_.odd)
                for (std::size_t k = 0; k < w_.in; ++k) rows[(filters - 1) * words + k / 64] |= std::uint64_t{1} << (k % 64);
            s.filters = filters;
            conv_ = kernels::binary_conv2d_weights(s, kernels::bit_matrix_view{rows.data(), s.filters, w_.in, words});
        }
    }

    void expect(layer_input got, std::size_t rows, std::size_t cols, std::size_t batch) const
    {
        if (got != input_)
            throw invalid_input(who() + "the layer reads " +
                                (input_ == layer_input::codes ? "input codes" : "sign bits") + ", not " +
                                (got == layer_input::codes ? "input codes" : "sign bits"));
        if (cols != shape_.channels || rows != batch * shape_.height * shape_.width)
            throw invalid_input(who() + "shape mismatch: expected " + std::to_string(batch) + " x " +
                                std::to_string(shape_.height) + " x " + std::to_string(shape_.width) +
                                " pixel rows of " + std::to_string(shape_.channels) + " channels, got " +
                                std::to_string(rows) + " rows of " + std::to_string(cols));
    }
    void expect_ld(std::size_t ldy) const
    {
        if (ldy < out_words()) throw invalid_input(who() + "sign rows shorter than ceil(filters / 64) words");
    }

    template <class T, int Slot>
    static std::vector<T>& scratch(std::size_t n)
    {
        return detail::scratch<packed_conv2d, T, Slot>(n);
    }

    /// v of images n0 .. n0 + n - 1 of input codes: im2col of the codes (0 at padded taps), then int8_gemm.
    void code_integers(kernels::matrix_view<std::uint8_t> const& x, std::size_t n0, std::size_t n,
                       std::int32_t* v) const
    {
        detail::code_conv_integers(shape_, w_, i8_, x, n0, n, scratch<std::uint8_t, 1>(0), v);
    }

    /// v of images n0 .. n0 + n - 1 of input sign bits, zero-padded: binary_conv2d, over the bit planes of
    /// the codes for odd levels (v = sum_b w_b (x . t_b), packed_dense's rule), and for integer levels the same
    /// less the sum of the patch's inputs, halved.
    void sign_integers(kernels::bit_matrix_view const& x, std::size_t n0, std::size_t n, std::int32_t* v) const
    {
        kernels::binary_conv2d_shape const& s = shape_;
        std::size_t const pixels = s.height * s.width, rows = n * out_pixels();
        kernels::bit_matrix_view const part{x.data + n0 * pixels * x.ld, n * pixels, x.cols, x.ld};
        if (w_.binary()) {
            kernels::binary_conv2d(conv_, part, n, kernels::int32_output{v, s.filters});
            return;
        }
        std::size_t const planes = static_cast<std::size_t>(w_.bits);
        std::size_t const wide = planes * s.filters + (w_.odd ? 0 : 1);
        std::vector<std::int32_t>& p = scratch<std::int32_t, 2>(rows * wide);
        kernels::binary_conv2d(conv_, part, n, kernels::int32_output{p.data(), wide});
        for (std::size_t r = 0; r < rows; ++r) {
            std::int32_t* vr = v + r * s.filters;
            std::int32_t const* pr = p.data() + r * wide;
            for (std::size_t j = 0; j < s.filters; ++j)
                vr[j] = -(pr[(planes - 1) * s.filters + j] * (1 << (planes - 1)));
            for (std::size_t b = 0; b + 1 < planes; ++b)
                for (std::size_t j = 0; j < s.filters; ++j) vr[j] += pr[b * s.filters + j] * (1 << b);
            if (!w_.odd) {
                // Integer levels: x . c = (x . (2c + 1) - sum_k x_k) / 2, the sum over the valid taps being the
                // product of the all-ones filter (zero padding contributes nothing to either).
                std::int32_t const sum = pr[wide - 1];
                for (std::size_t j = 0; j < s.filters; ++j) vr[j] = (vr[j] - sum) / 2;
            }
        }
    }

    void copy_rows(std::int32_t const* r, std::size_t rows, std::int64_t* v, std::size_t ldv) const
    {
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t j = 0; j < shape_.filters; ++j) v[i * ldv + j] = r[i * shape_.filters + j];
    }

    /// Sign bits of @p rows rows of results (consecutive output pixels from an image's first), by the
    /// thresholds of each pixel's padding class (one class for sign-bit input).
    void threshold_rows(std::int32_t const* v, std::size_t rows, std::uint64_t* y, std::size_t ldy) const
    {
        std::size_t const n = shape_.filters, words = out_words(), pixels = out_pixels();
        for (std::size_t r = 0; r < rows; ++r) {
            sign_thresholds const& t = t_.size() == 1 ? t_.front() : t_[classes_.pixel_class[r % pixels]];
            std::int32_t const* vr = v + r * n;
            for (std::size_t w = 0; w < words; ++w) {
                std::size_t const j0 = 64 * w, count = std::min<std::size_t>(64, n - j0);
                std::uint64_t bits = 0;
                for (std::size_t c = 0; c < count; ++c)
                    bits |= std::uint64_t{vr[j0 + c] >= t.threshold[j0 + c]} << c;
                std::uint64_t const mask = count == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << count) - 1;
                y[r * ldy + w] = (bits ^ t.flip[w]) & mask;
            }
        }
    }

    layer_input input_ = layer_input::signs;
    kernels::binary_conv2d_shape shape_{};
    packed_weights w_;
    std::vector<sign_thresholds> t_;
    padding_classes classes_;
    kernels::int8_packed_b i8_;               // input codes: the weights (s8 codes or +-1)
    kernels::binary_conv2d_weights conv_;     // sign bits: the weights, or the bit planes of their codes
};

} // namespace lowbit::deploy
