// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::packed_step: one step of a deploy::packed_model, over activations in one of three encodings
/// (deploy::encoding): float values, unsigned 8-bit codes (k-bit codes, or a model's 8-bit input codes), or
/// sign bits packed 64 per word. deploy::compile lowers a trained nn::sequential into these steps, layer by layer
/// (deploy/lowering.hpp); a packed file holds one record per step (deploy/packed_model_file.hpp).
///
/// | step                  | reads                | writes                   | what it computes                          |
/// |-----------------------|----------------------|--------------------------|-------------------------------------------|
/// | `input_codes_step`    | floats               | 8-bit codes              | the input map's codes (input_map)         |
/// | `integer_dense_step`  | codes or sign bits   | sign bits, codes, floats | v = sum_k x_k level_jk on the integer kernels, then thresholds (sign_thresholds, level_thresholds) or y_j = ((a v + offset_j) step_j) + bias_j |
/// | `float_dense_step`    | floats               | floats                   | x Q(w)^T + b with Q(w) rebuilt from its packed levels (sgemm) |
/// | `batch_norm_step`     | floats               | floats                   | nn::batch_norm's evaluation forward        |
/// | `clamp_step`          | floats               | floats                   | ReLU (lo 0), hardtanh                      |
/// | `sign_step`           | floats               | sign bits                | bit = !(x < 0), as ste::sign_activation    |
/// | `codes_step`          | floats               | codes                    | #{c : x >= threshold_c}, a code quantizer's own boundaries |
/// | `decode_step`         | codes or sign bits   | floats                   | the value each code (sign) stands for      |
/// | `residual_step`       | any                  | floats                   | inner(x) + x, the shortcut decoded         |
/// | `nhwc_step`           | floats (NCHW images) | floats (NHWC)            | the layout of the convolutions             |
/// | `integer_conv_step`   | codes or sign bits   | sign bits, codes, floats | a convolution on the integer kernels, an output set per padding class where the input's zero point needs it |
/// | `float_conv_step`     | floats               | floats                   | nn::conv2d's forward with Q(w) rebuilt     |
/// | `max_pool_step`       | any                  | the same                 | OR of sign bits, max of codes or floats    |
/// | `flatten_step`        | any (NHWC)           | the same, one row per sample | (y, x, c) order; floats (c, y, x)     |
///
/// Every step is plain data plus what its kernels prepared on construction, so a step built by compile() and
/// one read from a file run the same code.

#include <lowbit/config.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/packed_conv2d.hpp>
#include <lowbit/deploy/packed_kbit_conv2d.hpp>
#include <lowbit/deploy/packed_kbit_dense.hpp>
#include <lowbit/deploy/code_max_pool.hpp>
#include <lowbit/deploy/detail/code_conv.hpp>
#include <lowbit/deploy/padding_classes.hpp>
#include <lowbit/deploy/pool_window.hpp>
#include <lowbit/deploy/sign_max_pool.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/gemm.hpp>
#include <lowbit/kernels/matrix_view.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/conv2d.hpp>

#include <xsimd/memory/xsimd_aligned_allocator.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace lowbit::deploy {

/// @brief The memory of activations: 64-byte aligned (as xtensor's own buffers), so
/// that the kernels' full-width vector loads of a row start on a cache line.
template <class T>
using activation_buffer = std::vector<T, xsimd::aligned_allocator<T, 64>>;

/// @brief How activations between packed steps are held.
enum class encoding : std::uint8_t {
    floats,  ///< float values, one per feature
    codes,   ///< unsigned 8-bit codes, one byte per feature
    signs,   ///< sign bits, 64 per word, bit 1 = +1; rows of ceil(features / 64) words
};

/// @brief The activations of a batch between two steps: `rows` rows of `features` values in `kind`'s buffer. A
/// feature map is NHWC: a row per pixel (`height` x `width` of them per sample) holding its channels; flat
/// activations have one row per sample (height = width = 1).
struct activations {
    encoding kind = encoding::floats;
    std::size_t rows = 0;
    std::size_t features = 0;
    std::size_t height = 1;
    std::size_t width = 1;
    activation_buffer<float> floats{};
    activation_buffer<std::uint8_t> codes{};
    activation_buffer<std::uint64_t> signs{};

    /// The samples: rows / (height width).
    std::size_t batch() const noexcept { return rows / (height * width); }
    /// Makes these the empty activations of @p k, @p r rows of @p f features (a map of @p h x @p w pixels per
    /// sample), keeping the buffers' memory: the steps of a run reuse it from step to step.
    void reset(encoding k, std::size_t r, std::size_t f, std::size_t h = 1, std::size_t w = 1) noexcept
    {
        kind = k;
        rows = r;
        features = f;
        height = h;
        width = w;
        floats.clear();
        codes.clear();
        signs.clear();
    }
    /// reset() to the empty activations of @p k with @p x's rows and shape.
    void reset_like(activations const& x, encoding k) noexcept { reset(k, x.rows, x.features, x.height, x.width); }
    std::size_t words() const noexcept { return kernels::words_for_bits(features); }
    kernels::matrix_view<std::uint8_t> code_view() const noexcept { return {codes.data(), rows, features, features}; }
    kernels::bit_matrix_view sign_view() const noexcept { return {signs.data(), rows, features, words()}; }
};

/// @brief Float input -> the 8-bit codes of an input map (a packed model's first integer layer reads them).
struct input_codes_step {
    input_map map{};

    void forward(activations const& x, activations& y) const
    {
        y.reset_like(x, encoding::codes);
        y.codes.resize(x.floats.size());
        map.quantize(x.floats.data(), x.floats.size(), y.codes.data());
    }
};

/// @brief An integer layer's float output: y_j = float((a v + offset_j) step_j) + bias_j, the pre-activation the
/// folding evaluates (a: the input's unit, offset_j: the input's zero point times sum_k level_jk).
struct affine_output {
    double a = 1.0;
    std::vector<double> offset{};
    std::vector<double> step{};
    std::vector<float> bias{};

    float value(std::size_t j, std::int64_t v) const noexcept
    {
        auto const y = static_cast<float>((a * static_cast<double>(v) + offset[j]) * step[j]);
        return y + bias[j];
    }
};

/// @brief A dense layer on the integer kernels: reads codes or sign bits, writes sign bits (sign_thresholds),
/// codes (level_thresholds) or floats (affine_output).
class integer_dense_step {
public:
    using output = std::variant<sign_thresholds, level_thresholds, affine_output>;

    integer_dense_step() = default;

    /// @throws invalid_input for weights or an output stage of the wrong size.
    integer_dense_step(layer_input input, packed_weights w, output out) : input_(input), out_(std::move(out))
    {
        std::size_t const n = w.out;
        if (auto const* a = std::get_if<affine_output>(&out_);
            a != nullptr && (a->offset.size() != n || a->step.size() != n || a->bias.size() != n))
            throw invalid_input("lowbit::deploy::integer_dense_step: the float output needs " + std::to_string(n) +
                                " offsets, steps and biases");
        // The fused kernels: sign thresholds on either input, level thresholds on codes. Every other pairing
        // reads the kernels' integers and applies its output stage per value.
        if (auto const* t = std::get_if<sign_thresholds>(&out_))
            kernel_.emplace<packed_dense>(input, std::move(w), *t);
        else if (input == layer_input::signs)
            kernel_.emplace<packed_dense>(input, std::move(w),
                                          sign_thresholds{std::vector<std::int32_t>(n, 0),
                                                          std::vector<std::uint64_t>(kernels::words_for_bits(n), 0)});
        else if (auto const* l = std::get_if<level_thresholds>(&out_))
            kernel_.emplace<packed_kbit_dense>(std::move(w), *l);
        else
            kernel_.emplace<packed_kbit_dense>(std::move(w), std::vector<double>(n, 1.0), std::vector<float>(n, 0.0f));
    }

    layer_input input() const noexcept { return input_; }
    output const& stage() const noexcept { return out_; }
    packed_weights const& weights() const noexcept
    {
        return std::visit([](auto const& k) -> packed_weights const& { return k.weights(); }, kernel_);
    }
    std::size_t in() const noexcept { return weights().in; }
    std::size_t out() const noexcept { return weights().out; }
    encoding writes() const noexcept
    {
        return std::holds_alternative<sign_thresholds>(out_)    ? encoding::signs
               : std::holds_alternative<level_thresholds>(out_) ? encoding::codes
                                                                : encoding::floats;
    }

    void forward(activations const& x, activations& y) const
    {
        std::size_t const m = x.rows, n = out();
        y.reset(writes(), m, n);
        if (y.kind == encoding::signs) {
            y.signs.resize(m * y.words());
            auto const& k = std::get<packed_dense>(kernel_);
            if (input_ == layer_input::codes)
                k.forward(x.code_view(), y.signs.data(), y.words());
            else
                k.forward(x.sign_view(), y.signs.data(), y.words());
            return;
        }
        if (y.kind == encoding::codes && input_ == layer_input::codes) {
            y.codes.resize(m * n);
            std::get<packed_kbit_dense>(kernel_).forward(x.code_view(), y.codes.data(), n);
            return;
        }
        std::vector<std::int64_t> v(m * n);
        if (input_ == layer_input::codes)
            std::get<packed_kbit_dense>(kernel_).integers(x.code_view(), v.data(), n);
        else
            std::get<packed_dense>(kernel_).integers(x.sign_view(), v.data(), n);
        if (auto const* t = std::get_if<level_thresholds>(&out_)) {
            y.codes.resize(m * n);
            for (std::size_t i = 0; i < m * n; ++i) y.codes[i] = t->code(i % n, v[i]);
        } else {
            auto const& a = std::get<affine_output>(out_);
            y.floats.resize(m * n);
            for (std::size_t i = 0; i < m * n; ++i) y.floats[i] = a.value(i % n, v[i]);
        }
    }

private:
    layer_input input_ = layer_input::codes;
    output out_{};
    std::variant<packed_dense, packed_kbit_dense> kernel_{};
};

/// @brief A dense layer on float activations with packed weights: y = x Q(w)^T + b, Q(w) rebuilt as
/// level_jk times the channel's step (what nn::dense evaluates with), by the same sgemm and bias order as
/// nn::dense. The weights are stored packed; in memory they are float for sgemm.
class float_dense_step {
public:
    float_dense_step() = default;

    /// @p w's scale holds each channel's step (empty: packed_weights::step()); @p bias is empty or one per output.
    float_dense_step(packed_weights w, std::vector<float> bias) : w_(std::move(w)), bias_(std::move(bias))
    {
        w_.check("lowbit::deploy::float_dense_step: ");
        if (!bias_.empty() && bias_.size() != w_.out)
            throw invalid_input("lowbit::deploy::float_dense_step: " + std::to_string(bias_.size()) + " biases for " +
                                std::to_string(w_.out) + " outputs");
        if (!w_.scale.empty() && w_.scale.size() != w_.out)
            throw invalid_input("lowbit::deploy::float_dense_step: " + std::to_string(w_.scale.size()) +
                                " steps for " + std::to_string(w_.out) + " outputs");
        values_.resize(w_.out * w_.in);
        for (std::size_t j = 0; j < w_.out; ++j) {
            float const s = w_.scale.empty() ? static_cast<float>(w_.step()) : w_.scale[j];
            for (std::size_t k = 0; k < w_.in; ++k) values_[j * w_.in + k] = static_cast<float>(w_.level(j, k)) * s;
        }
    }

    packed_weights const& weights() const noexcept { return w_; }
    std::span<float const> bias() const noexcept { return bias_; }
    std::size_t in() const noexcept { return w_.in; }
    std::size_t out() const noexcept { return w_.out; }

    void forward(activations const& x, activations& y) const
    {
        std::size_t const m = x.rows, n = w_.out;
        y.reset(encoding::floats, m, n);
        y.floats.resize(m * n);
        kernels::sgemm(kernels::transpose::no, kernels::transpose::yes, m, n, w_.in, 1.0f, x.floats.data(), w_.in,
                       values_.data(), w_.in, 0.0f, y.floats.data(), n);
        if (!bias_.empty())
            for (std::size_t i = 0; i < m; ++i)
                for (std::size_t j = 0; j < n; ++j) y.floats[i * n + j] += bias_[j];
    }

private:
    packed_weights w_{};
    std::vector<float> bias_{};
    std::vector<float> values_{};
};

/// @brief BatchNorm in evaluation: a copy of the model's nn::batch_norm (running statistics, gamma, beta, eps)
/// runs its own evaluation forward, so the values are those of the fake-quant model whatever the compiler
/// contracts.
struct batch_norm_step {
    nn::batch_norm<2> norm = nn::batch_norm<2>(nn::batch_norm_options{});

    void forward(activations const& x, activations& y) const
    {
        nn::batch_norm<2> b = norm;  // forward() keeps scratch state: a copy per call keeps the step const
        xt::xtensor<float, 2> in = xt::xtensor<float, 2>::from_shape({x.rows, x.features});
        std::copy(x.floats.begin(), x.floats.end(), in.begin());
        xt::xtensor<float, 2> const out = b.forward(in, {.training = false});
        y.reset_like(x, encoding::floats);
        y.floats.assign(out.begin(), out.end());
    }
};

/// @brief An elementwise clamp to [lo, hi]: nn::relu (lo 0, hi infinity: x > 0 ? x : 0) and nn::hardtanh.
struct clamp_step {
    float lo = 0.0f;
    float hi = 0.0f;

    void forward(activations const& x, activations& y) const
    {
        y.reset_like(x, encoding::floats);
        y.floats.resize(x.floats.size());
        for (std::size_t i = 0; i < x.floats.size(); ++i) {
            float const v = x.floats[i];
            y.floats[i] = v > lo ? (v < hi ? v : hi) : lo;  // relu: x > 0 ? x : 0, as nn::relu
        }
    }
};

/// @brief Float values -> sign bits, bit = !(x < 0): ste::sign_activation's sign (0 is +1).
struct sign_step {
    void forward(activations const& x, activations& y) const
    {
        y.reset_like(x, encoding::signs);
        y.signs.resize(x.rows * y.words());
        kernels::pack_sign_rows(x.floats.data(), x.rows, x.features, x.features, y.signs.data(), y.words());
    }
};

/// @brief Float values -> unsigned codes by a code quantizer's own boundaries: code = #{c : x >= threshold[c]},
/// `values[code]` the float the quantizer writes for it.
struct codes_step {
    std::vector<float> threshold{};  ///< 2^bits - 1, non-decreasing
    std::vector<float> values{};     ///< 2^bits

    void forward(activations const& x, activations& y) const
    {
        y.reset_like(x, encoding::codes);
        y.codes.resize(x.floats.size());
        for (std::size_t i = 0; i < x.floats.size(); ++i)
            y.codes[i] = static_cast<std::uint8_t>(
                std::upper_bound(threshold.begin(), threshold.end(), x.floats[i]) - threshold.begin());
    }
};

/// @brief Codes or sign bits -> the floats they stand for: values[code], or values[bit] (values = {-1, +1}).
struct decode_step {
    std::vector<float> values{};

    void forward(activations const& x, activations& y) const
    {
        y.reset_like(x, encoding::floats);
        decode(x, y.floats);
    }

    /// The floats of @p x into @p out (rows x features).
    void decode(activations const& x, activation_buffer<float>& out) const
    {
        out.resize(x.rows * x.features);
        if (x.kind == encoding::floats) {
            std::copy(x.floats.begin(), x.floats.end(), out.begin());
            return;
        }
        for (std::size_t r = 0; r < x.rows; ++r)
            for (std::size_t f = 0; f < x.features; ++f)
                out[r * x.features + f] = x.kind == encoding::codes
                                              ? values[x.codes[r * x.features + f]]
                                              : values[(x.signs[r * x.words() + f / 64] >> (f % 64)) & 1u];
    }
};

/// @brief A model's float input as images: rows of channels x height x width values (NCHW, as nn::conv2d reads
/// them) -> NHWC rows, one per pixel, as the packed convolutions read them.
struct nhwc_step {
    std::size_t channels = 0, height = 0, width = 0;

    void forward(activations const& x, activations& y) const
    {
        std::size_t const n = x.rows, pixels = height * width;
        y.reset(encoding::floats, n * pixels, channels, height, width);
        y.floats.resize(x.floats.size());
        for (std::size_t s = 0; s < n; ++s)
            for (std::size_t c = 0; c < channels; ++c)
                for (std::size_t p = 0; p < pixels; ++p)
                    y.floats[(s * pixels + p) * channels + c] = x.floats[(s * channels + c) * pixels + p];
    }
};

/// @brief A convolution on the integer kernels (packed_conv2d, packed_kbit_conv2d): reads NHWC codes or sign
/// bits, writes NHWC sign bits, codes or floats. Each output stage holds one set per padding class of the
/// convolution (a first layer on input codes whose zero point is not 0: padding_classes) or one set.
class integer_conv_step {
public:
    using output = std::variant<std::vector<sign_thresholds>, std::vector<level_thresholds>, std::vector<affine_output>>;

    integer_conv_step() = default;

    /// @throws invalid_input for an inconsistent geometry, weights or output stage.
    integer_conv_step(layer_input input, kernels::binary_conv2d_shape const& shape, packed_weights w, output out)
        : input_(input), out_(std::move(out))
    {
        // Before padding_classes divides by the stride (a file's geometry is checked here, not trusted).
        detail::check_conv_geometry("lowbit::deploy::integer_conv_step: ", shape, w);
        std::size_t const n = shape.filters;
        std::size_t const sets = std::visit([](auto const& o) { return o.size(); }, out_);
        std::size_t const classes = padding_classes::of(shape).count();
        if (sets != 1 && sets != classes)
            throw invalid_input("lowbit::deploy::integer_conv_step: " + std::to_string(sets) +
                                " output sets, expected 1 or " + std::to_string(classes) + " (one per padding class)");
        if (auto const* a = std::get_if<std::vector<affine_output>>(&out_))
            for (affine_output const& o : *a)
                if (o.offset.size() != n || o.step.size() != n || o.bias.size() != n)
                    throw invalid_input("lowbit::deploy::integer_conv_step: the float output needs " +
                                        std::to_string(n) + " offsets, steps and biases");
        // The fused kernels: sign thresholds (on input codes one set per class: a single set is repeated),
        // level thresholds on codes.
        auto const* t = std::get_if<std::vector<sign_thresholds>>(&out_);
        if (t != nullptr) {
            std::vector<sign_thresholds> per_class = *t;
            if (input == layer_input::codes && per_class.size() == 1) per_class.assign(classes, per_class.front());
            kernel_.emplace<packed_conv2d>(input, shape, std::move(w), std::move(per_class));
        } else if (input == layer_input::signs) {
            sign_thresholds const zero{std::vector<std::int32_t>(n, 0),
                                       std::vector<std::uint64_t>(kernels::words_for_bits(n), 0)};
            kernel_.emplace<packed_conv2d>(input, shape, std::move(w), std::vector<sign_thresholds>{zero});
        } else if (auto const* l = std::get_if<std::vector<level_thresholds>>(&out_)) {
            kernel_.emplace<packed_kbit_conv2d>(shape, std::move(w), *l);
        } else {
            level_thresholds const zero{1, std::vector<std::int32_t>(n, 0), std::vector<std::uint8_t>(n, 0)};
            kernel_.emplace<packed_kbit_conv2d>(shape, std::move(w), std::vector<level_thresholds>{zero});
        }
    }

    layer_input input() const noexcept { return input_; }
    output const& stage() const noexcept { return out_; }
    kernels::binary_conv2d_shape const& shape() const noexcept
    {
        return std::visit([](auto const& k) -> kernels::binary_conv2d_shape const& { return k.shape(); }, kernel_);
    }
    packed_weights const& weights() const noexcept
    {
        return std::visit([](auto const& k) -> packed_weights const& { return k.weights(); }, kernel_);
    }
    padding_classes const& classes() const noexcept
    {
        return std::visit([](auto const& k) -> padding_classes const& { return k.classes(); }, kernel_);
    }
    encoding writes() const noexcept
    {
        return std::holds_alternative<std::vector<sign_thresholds>>(out_)    ? encoding::signs
               : std::holds_alternative<std::vector<level_thresholds>>(out_) ? encoding::codes
                                                                               : encoding::floats;
    }

    void forward(activations const& x, activations& y) const
    {
        kernels::binary_conv2d_shape const& s = shape();
        std::size_t const batch = x.batch(), pixels = s.out_height() * s.out_width(), n = s.filters;
        y.reset(writes(), batch * pixels, n, s.out_height(), s.out_width());
        auto const* conv = std::get_if<packed_conv2d>(&kernel_);
        if (std::holds_alternative<std::vector<sign_thresholds>>(out_)) {
            y.signs.resize(y.rows * y.words());
            if (input_ == layer_input::codes)
                conv->forward(x.code_view(), batch, y.signs.data(), y.words());
            else
                conv->forward(x.sign_view(), batch, y.signs.data(), y.words());
            return;
        }
        if (conv == nullptr && std::holds_alternative<std::vector<level_thresholds>>(out_)) {
            y.codes.resize(y.rows * n);
            std::get<packed_kbit_conv2d>(kernel_).forward(x.code_view(), batch, y.codes.data(), n);
            return;
        }
        std::vector<std::int64_t> v(y.rows * n);
        if (conv == nullptr)
            std::get<packed_kbit_conv2d>(kernel_).integers(x.code_view(), batch, v.data(), n);
        else if (input_ == layer_input::codes)
            conv->integers(x.code_view(), batch, v.data(), n);
        else
            conv->integers(x.sign_view(), batch, v.data(), n);
        padding_classes const& c = classes();
        auto const set = [&](std::size_t r) -> std::size_t {
            return std::visit([](auto const& o) { return o.size(); }, out_) == 1 ? 0 : c.pixel_class[r % pixels];
        };
        if (auto const* l = std::get_if<std::vector<level_thresholds>>(&out_)) {
            y.codes.resize(y.rows * n);
            for (std::size_t r = 0; r < y.rows; ++r)
                for (std::size_t j = 0; j < n; ++j) y.codes[r * n + j] = (*l)[set(r)].code(j, v[r * n + j]);
        } else {
            auto const& a = std::get<std::vector<affine_output>>(out_);
            y.floats.resize(y.rows * n);
            for (std::size_t r = 0; r < y.rows; ++r)
                for (std::size_t j = 0; j < n; ++j) y.floats[r * n + j] = a[set(r)].value(j, v[r * n + j]);
        }
    }

private:
    layer_input input_ = layer_input::codes;
    output out_{};
    std::variant<packed_conv2d, packed_kbit_conv2d> kernel_{};
};

/// @brief A convolution on float activations with packed weights: nn::conv2d's own evaluation forward (im2col,
/// sgemm) with Q(w) rebuilt as level times the filter's step, on NHWC rows converted to NCHW and back.
class float_conv_step {
public:
    float_conv_step() = default;

    /// @p w: filters x kernel^2 channels in patch order (ky, kx, c), its scale each filter's step (empty:
    /// packed_weights::step()); @p bias empty or one per filter.
    float_conv_step(kernels::binary_conv2d_shape const& shape, packed_weights w, std::vector<float> bias)
        : shape_(shape), w_(std::move(w)), bias_(std::move(bias)),
          conv_({.in = shape.channels, .out = shape.filters, .kernel = shape.kernel, .stride = shape.stride,
                 .padding = shape.padding, .bias = !bias_.empty()})
    {
        w_.check("lowbit::deploy::float_conv_step: ");
        detail::check_conv_geometry("lowbit::deploy::float_conv_step: ", shape_, w_);
        std::size_t const k = shape_.kernel, c = shape_.channels, patch = k * k * c;
        if (w_.out != shape_.filters || w_.in != patch || (!bias_.empty() && bias_.size() != w_.out) ||
            (!w_.scale.empty() && w_.scale.size() != w_.out))
            throw invalid_input("lowbit::deploy::float_conv_step: weights, steps or biases do not fit " +
                                std::to_string(shape_.filters) + " filters of " + std::to_string(patch) + " taps");
        std::vector<float> values(w_.out * patch);  // nn::conv2d's order [out][c][ky][kx]
        for (std::size_t j = 0; j < w_.out; ++j) {
            float const step = w_.scale.empty() ? static_cast<float>(w_.step()) : w_.scale[j];
            for (std::size_t ky = 0; ky < k; ++ky)
                for (std::size_t kx = 0; kx < k; ++kx)
                    for (std::size_t ch = 0; ch < c; ++ch)
                        values[j * patch + (ch * k + ky) * k + kx] =
                            static_cast<float>(w_.level(j, (ky * k + kx) * c + ch)) * step;
        }
        conv_.weight().assign(values);
        std::copy(bias_.begin(), bias_.end(), conv_.bias().begin());
    }

    kernels::binary_conv2d_shape const& shape() const noexcept { return shape_; }
    packed_weights const& weights() const noexcept { return w_; }
    std::span<float const> bias() const noexcept { return bias_; }

    void forward(activations const& x, activations& y) const
    {
        std::size_t const n = x.batch(), c = shape_.channels, hw = shape_.height * shape_.width;
        xt::xtensor<float, 4> in = xt::xtensor<float, 4>::from_shape({n, c, shape_.height, shape_.width});
        for (std::size_t s = 0; s < n; ++s)
            for (std::size_t p = 0; p < hw; ++p)
                for (std::size_t ch = 0; ch < c; ++ch) in.data()[(s * c + ch) * hw + p] = x.floats[(s * hw + p) * c + ch];
        nn::conv2d<> conv = conv_;  // forward() keeps scratch state: a copy per call keeps the step const
        xt::xtensor<float, 4> const out = conv.forward(in, {.training = false});
        std::size_t const f = shape_.filters, oh = out.shape(2), ow = out.shape(3), op = oh * ow;
        y.reset(encoding::floats, n * op, f, oh, ow);
        y.floats.resize(n * op * f);
        for (std::size_t s = 0; s < n; ++s)
            for (std::size_t j = 0; j < f; ++j)
                for (std::size_t p = 0; p < op; ++p) y.floats[(s * op + p) * f + j] = out.data()[(s * f + j) * op + p];
    }

private:
    kernels::binary_conv2d_shape shape_{};
    packed_weights w_{};
    std::vector<float> bias_{};
    nn::conv2d<> conv_{nn::conv2d_options{}};
};

/// @brief Max pooling of an NHWC feature map of `height` x `width` pixels: an OR of sign bits (the max of +-1),
/// the largest code, or the largest float.
struct max_pool_step {
    pool_window window{};

    void forward(activations const& x, activations& y) const
    {
        std::size_t const n = x.batch(), oh = window.out(x.height), ow = window.out(x.width);
        y.reset(x.kind, n * oh * ow, x.features, oh, ow);
        if (x.kind == encoding::signs) {
            y.signs.resize(y.rows * y.words());
            sign_max_pool(x.sign_view(), n, x.height, x.width, window, y.signs.data(), y.words());
        } else if (x.kind == encoding::codes) {
            y.codes.resize(y.rows * y.features);
            code_max_pool(x.code_view(), n, x.height, x.width, window, y.codes.data(), y.features);
        } else {
            window.check(x.height, x.width, "lowbit::deploy::max_pool_step: ");
            std::size_t const c = x.features;
            y.floats.resize(y.rows * c);
            for (std::size_t s = 0; s < n; ++s)
                for (std::size_t oy = 0; oy < oh; ++oy)
                    for (std::size_t ox = 0; ox < ow; ++ox) {
                        float* dst = y.floats.data() + ((s * oh + oy) * ow + ox) * c;
                        for (std::size_t ky = 0; ky < window.kernel; ++ky)
                            for (std::size_t kx = 0; kx < window.kernel; ++kx) {
                                float const* src = x.floats.data() +
                                                   ((s * x.height + oy * window.stride + ky) * x.width +
                                                    ox * window.stride + kx) * c;
                                for (std::size_t ch = 0; ch < c; ++ch)
                                    dst[ch] = ky == 0 && kx == 0 ? src[ch] : std::max(dst[ch], src[ch]);
                            }
                    }
        }
    }
};

/// @brief An NHWC feature map -> one row per sample: codes and sign bits in (y, x, c) order (the integer dense
/// layer after them reads its weight columns in that order; sign bits are repacked into contiguous rows), floats
/// in nn::flatten's (c, y, x) order, so that a float layer after them sums in the fake-quant model's order.
struct flatten_step {
    void forward(activations const& x, activations& y) const
    {
        std::size_t const n = x.batch(), pixels = x.height * x.width, c = x.features;
        y.reset(x.kind, n, c * pixels);
        if (x.kind == encoding::floats) {
            y.floats.resize(x.floats.size());
            for (std::size_t s = 0; s < n; ++s)
                for (std::size_t p = 0; p < pixels; ++p)
                    for (std::size_t ch = 0; ch < c; ++ch)
                        y.floats[(s * c + ch) * pixels + p] = x.floats[(s * pixels + p) * c + ch];
        } else if (x.kind == encoding::codes) {
            y.codes = x.codes;
        } else {
            // Each pixel's c bits go to bit (pixel c) of its sample's row, a word at a time; the bits past c in a
            // pixel's last word are masked off, whatever the step before left there.
            std::size_t const xw = x.words(), yw = y.words();
            std::uint64_t const last = c % 64 == 0 ? ~std::uint64_t{0} : (std::uint64_t{1} << (c % 64)) - 1;
            y.signs.assign(n * yw, 0);
            for (std::size_t r = 0; r < x.rows; ++r) {
                std::uint64_t const* src = x.signs.data() + r * xw;
                std::uint64_t* dst = y.signs.data() + (r / pixels) * yw;
                std::size_t const offset = (r % pixels) * c, shift = offset % 64;
                for (std::size_t k = 0; k < xw; ++k) {
                    std::size_t const word = offset / 64 + k;
                    std::uint64_t const bits = k + 1 == xw ? src[k] & last : src[k];
                    dst[word] |= bits << shift;
                    if (shift != 0 && word + 1 < yw) dst[word + 1] |= bits >> (64 - shift);
                }
            }
        }
    }
};

struct packed_step;

/// @brief y = inner(x) + x: the inner steps must write floats of x's width; the shortcut is x decoded by
/// `shortcut` (its values for codes or signs; unused for floats).
struct residual_step {
    // No default member initializer: clang would instantiate the constructor of a vector of an incomplete type.
    std::vector<packed_step> inner;
    decode_step shortcut{};

    void forward(activations const& x, activations& y) const;
};

/// @brief One step of a packed model; see the file comment.
struct packed_step {
    std::variant<input_codes_step, integer_dense_step, float_dense_step, batch_norm_step, clamp_step, sign_step,
                 codes_step, decode_step, residual_step, nhwc_step, integer_conv_step, float_conv_step, max_pool_step,
                 flatten_step>
        op;

    void forward(activations const& x, activations& y) const;
};

inline void residual_step::forward(activations const& x, activations& y) const
{
    activations a = x, b;
    for (packed_step const& s : inner) {
        s.forward(a, b);
        std::swap(a, b);
    }
    // The steps chain (packed_model checks it on construction): a holds x.features floats.
    activation_buffer<float> s;
    shortcut.decode(x, s);
    for (std::size_t i = 0; i < s.size(); ++i) a.floats[i] += s[i];
    y = std::move(a);
}

inline void packed_step::forward(activations const& x, activations& y) const
{
    std::visit([&](auto const& s) { s.forward(x, y); }, op);
}

/// @brief What flows between two steps, as far as the steps' shapes go: the encoding, the width, and for codes
/// how many distinct codes there can be.
struct activation_shape {
    encoding kind = encoding::floats;
    std::size_t features = 0;  ///< per row: a pixel's channels, or a flat sample's values
    std::size_t codes = 0;
    std::size_t height = 1, width = 1;  ///< pixels per sample (1 x 1: flat)
};

/// @brief The shape step @p s writes for input of shape @p in.
/// @throws invalid_input naming the step when it cannot read @p in (another encoding or width, a decode table
/// shorter than the codes).
inline activation_shape shape_after(packed_step const& s, activation_shape in)
{
    auto fail = [](std::string const& what) {
        throw invalid_input("lowbit::deploy::packed_model: the steps do not chain: " + what);
    };
    auto expect = [&](encoding e, char const* step) {
        if (in.kind != e)
            fail(std::string(step) + " reads " +
                 (e == encoding::floats ? "floats" : e == encoding::codes ? "codes" : "sign bits"));
    };
    auto decodes = [&](decode_step const& d, char const* step) {
        if (in.kind == encoding::signs && d.values.size() != 2) fail(std::string(step) + " needs two values for signs");
        if (in.kind == encoding::codes && d.values.size() < in.codes)
            fail(std::string(step) + " has " + std::to_string(d.values.size()) + " values for " +
                 std::to_string(in.codes) + " codes");
    };
    return std::visit(
        [&]<class S>(S const& step) -> activation_shape {
            if constexpr (std::is_same_v<S, input_codes_step>) {
                expect(encoding::floats, "an input-codes step");
                return {encoding::codes, in.features, 256, in.height, in.width};
            } else if constexpr (std::is_same_v<S, nhwc_step>) {
                expect(encoding::floats, "an NHWC step");
                if (in.height * in.width != 1 || step.channels * step.height * step.width != in.features)
                    fail("an NHWC step of " + std::to_string(step.channels) + "x" + std::to_string(step.height) + "x" +
                         std::to_string(step.width) + " images reads " + std::to_string(in.features) + " flat features");
                return {encoding::floats, step.channels, 0, step.height, step.width};
            } else if constexpr (std::is_same_v<S, integer_conv_step> || std::is_same_v<S, float_conv_step>) {
                kernels::binary_conv2d_shape const& g = step.shape();
                if constexpr (std::is_same_v<S, integer_conv_step>) {
                    expect(step.input() == layer_input::codes ? encoding::codes : encoding::signs, "an integer convolution");
                } else {
                    expect(encoding::floats, "a float convolution");
                }
                if (in.features != g.channels || in.height != g.height || in.width != g.width)
                    fail("a convolution of " + std::to_string(g.channels) + "x" + std::to_string(g.height) + "x" +
                         std::to_string(g.width) + " reads " + std::to_string(in.features) + "x" +
                         std::to_string(in.height) + "x" + std::to_string(in.width));
                std::size_t codes = 0;
                encoding out = encoding::floats;
                if constexpr (std::is_same_v<S, integer_conv_step>) {
                    out = step.writes();
                    if (auto const* l = std::get_if<std::vector<level_thresholds>>(&step.stage()))
                        codes = static_cast<std::size_t>(l->front().levels) + 1;
                }
                return {out, g.filters, codes, g.out_height(), g.out_width()};
            } else if constexpr (std::is_same_v<S, max_pool_step>) {
                step.window.check(in.height, in.width, "lowbit::deploy::packed_model: the steps do not chain: a max pooling: ");
                return {in.kind, in.features, in.codes, step.window.out(in.height), step.window.out(in.width)};
            } else if constexpr (std::is_same_v<S, flatten_step>) {
                return {in.kind, in.features * in.height * in.width, in.codes, 1, 1};
            } else if constexpr (std::is_same_v<S, integer_dense_step>) {
                expect(step.input() == layer_input::codes ? encoding::codes : encoding::signs, "an integer dense step");
                if (in.height * in.width != 1) fail("an integer dense step reads flat rows (flatten first)");
                if (in.features != step.in())
                    fail("an integer dense step reads " + std::to_string(step.in()) + " features, not " +
                         std::to_string(in.features));
                auto const* l = std::get_if<level_thresholds>(&step.stage());
                return {step.writes(), step.out(), l != nullptr ? static_cast<std::size_t>(l->levels) + 1 : 0};
            } else if constexpr (std::is_same_v<S, float_dense_step>) {
                expect(encoding::floats, "a float dense step");
                if (in.height * in.width != 1) fail("a float dense step reads flat rows (flatten first)");
                if (in.features != step.in())
                    fail("a float dense step reads " + std::to_string(step.in()) + " features, not " +
                         std::to_string(in.features));
                return {encoding::floats, step.out(), 0};
            } else if constexpr (std::is_same_v<S, batch_norm_step>) {
                expect(encoding::floats, "a batch_norm step");
                if (step.norm.options().channels != in.features)
                    fail("a batch_norm step of " + std::to_string(step.norm.options().channels) + " channels reads " +
                         std::to_string(in.features) + " features");
                return in;
            } else if constexpr (std::is_same_v<S, clamp_step> || std::is_same_v<S, sign_step> ||
                                 std::is_same_v<S, codes_step>) {
                expect(encoding::floats, "an elementwise step");
                if constexpr (std::is_same_v<S, sign_step>) return {encoding::signs, in.features, 0, in.height, in.width};
                if constexpr (std::is_same_v<S, codes_step>)
                    return {encoding::codes, in.features, step.values.size(), in.height, in.width};
                return in;
            } else if constexpr (std::is_same_v<S, decode_step>) {
                if (in.kind == encoding::floats) fail("a decode step reads codes or sign bits");
                decodes(step, "a decode step");
                return {encoding::floats, in.features, 0, in.height, in.width};
            } else {
                activation_shape a = in;
                for (packed_step const& t : step.inner) a = shape_after(t, a);
                if (a.kind != encoding::floats || a.features != in.features || a.height != in.height || a.width != in.width)
                    fail("a residual block's steps must write floats of its input's shape");
                if (in.kind != encoding::floats) decodes(step.shortcut, "a residual shortcut");
                return a;
            }
        },
        s.op);
}

} // namespace lowbit::deploy
