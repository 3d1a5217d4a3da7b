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
///
/// Every step is plain data plus what its kernels prepared on construction, so a step built by compile() and
/// one read from a file run the same code.

#include <lowbit/config.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/packed_kbit_dense.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/gemm.hpp>
#include <lowbit/kernels/matrix_view.hpp>
#include <lowbit/nn/batch_norm.hpp>

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

/// @brief How activations between packed steps are held.
enum class encoding : std::uint8_t {
    floats,  ///< float values, one per feature
    codes,   ///< unsigned 8-bit codes, one byte per feature
    signs,   ///< sign bits, 64 per word, bit 1 = +1; rows of ceil(features / 64) words
};

/// @brief The activations of a batch between two steps: `rows` samples of `features` values in `kind`'s
/// buffer.
struct activations {
    encoding kind = encoding::floats;
    std::size_t rows = 0;
    std::size_t features = 0;
    std::vector<float> floats{};
    std::vector<std::uint8_t> codes{};
    std::vector<std::uint64_t> signs{};

    std::size_t words() const noexcept { return kernels::words_for_bits(features); }
    kernels::matrix_view<std::uint8_t> code_view() const noexcept { return {codes.data(), rows, features, features}; }
    kernels::bit_matrix_view sign_view() const noexcept { return {signs.data(), rows, features, words()}; }
};

/// @brief Float input -> the 8-bit codes of an input map (a packed model's first integer layer reads them).
struct input_codes_step {
    input_map map{};

    void forward(activations const& x, activations& y) const
    {
        y = {.kind = encoding::codes, .rows = x.rows, .features = x.features};
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
        y = {.kind = writes(), .rows = m, .features = n};
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
        y = {.kind = encoding::floats, .rows = m, .features = n};
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
        y = {.kind = encoding::floats, .rows = x.rows, .features = x.features};
        y.floats.assign(out.begin(), out.end());
    }
};

/// @brief An elementwise clamp to [lo, hi]: nn::relu (lo 0, hi infinity: x > 0 ? x : 0) and nn::hardtanh.
struct clamp_step {
    float lo = 0.0f;
    float hi = 0.0f;

    void forward(activations const& x, activations& y) const
    {
        y = {.kind = encoding::floats, .rows = x.rows, .features = x.features};
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
        y = {.kind = encoding::signs, .rows = x.rows, .features = x.features};
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
        y = {.kind = encoding::codes, .rows = x.rows, .features = x.features};
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
        y = {.kind = encoding::floats, .rows = x.rows, .features = x.features};
        decode(x, y.floats);
    }

    /// The floats of @p x into @p out (rows x features).
    void decode(activations const& x, std::vector<float>& out) const
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

struct packed_step;

/// @brief y = inner(x) + x: the inner steps must write floats of x's width; the shortcut is x decoded by
/// `shortcut` (its values for codes or signs; unused for floats).
struct residual_step {
    std::vector<packed_step> inner{};
    decode_step shortcut{};

    void forward(activations const& x, activations& y) const;
};

/// @brief One step of a packed model; see the file comment.
struct packed_step {
    std::variant<input_codes_step, integer_dense_step, float_dense_step, batch_norm_step, clamp_step, sign_step,
                 codes_step, decode_step, residual_step>
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
    std::vector<float> s;
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
    std::size_t features = 0;
    std::size_t codes = 0;
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
                return {encoding::codes, in.features, 256};
            } else if constexpr (std::is_same_v<S, integer_dense_step>) {
                expect(step.input() == layer_input::codes ? encoding::codes : encoding::signs, "an integer dense step");
                if (in.features != step.in())
                    fail("an integer dense step reads " + std::to_string(step.in()) + " features, not " +
                         std::to_string(in.features));
                auto const* l = std::get_if<level_thresholds>(&step.stage());
                return {step.writes(), step.out(), l != nullptr ? static_cast<std::size_t>(l->levels) + 1 : 0};
            } else if constexpr (std::is_same_v<S, float_dense_step>) {
                expect(encoding::floats, "a float dense step");
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
                if constexpr (std::is_same_v<S, sign_step>) return {encoding::signs, in.features, 0};
                if constexpr (std::is_same_v<S, codes_step>) return {encoding::codes, in.features, step.values.size()};
                return in;
            } else if constexpr (std::is_same_v<S, decode_step>) {
                if (in.kind == encoding::floats) fail("a decode step reads codes or sign bits");
                decodes(step, "a decode step");
                return {encoding::floats, in.features, 0};
            } else {
                activation_shape a = in;
                for (packed_step const& t : step.inner) a = shape_after(t, a);
                if (a.kind != encoding::floats || a.features != in.features)
                    fail("a residual block's steps must write " + std::to_string(in.features) + " floats");
                if (in.kind != encoding::floats) decodes(step.shortcut, "a residual shortcut");
                return a;
            }
        },
        s.op);
}

} // namespace lowbit::deploy
