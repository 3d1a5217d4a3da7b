// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::lowering: what deploy::compile hands each layer of a model, in order, through the
/// customization point `lower(layer&, deploy::lowering&)` (deploy/lower.hpp). It tracks how the activations
/// are encoded (floats, codes, sign bits) and turns the layers it is told about into packed steps
/// (deploy/packed_step.hpp):
///
/// - `dense(w)` after codes or sign bits starts an integer layer whose output stage is still open: the
///   elementwise layers that follow (`per_channel`: BatchNorm, ReLU, hardtanh) are collected, and a `sign()` or
///   `codes()` quantizer closes it with exact integer thresholds found by evaluating copies of those very
///   layers (the fake-quant model's own code) on y_j(v) for the integers v the layer can produce. Anything else
///   closes it with float outputs y_j(v) followed by the collected layers as float steps.
/// - `dense(w)` on the model's float input first maps the input to 8-bit codes (compile_options::input), so the
///   first layer runs on the int8 kernel as well; on other float activations (BinaryConnect's float ReLU) it is
///   a float layer with packed weights.
/// - `conv(shape, w)` is `dense` on NHWC feature maps (compile_options' height and width give the input's; a
///   layer that reads images calls `image_input(channels)` first); on input codes whose code 0 is not 0.0 the
///   pre-activation, and so the thresholds, differ per padding class.
/// - `max_pool(window)` pools whatever the activations are; `flatten()` makes one row per sample and hands the
///   next dense layer the column order of the packed feature map (`take_flatten_order()`).
/// - `residual(inner)` lowers a block into its own steps and adds the shortcut in float.
///
/// A user's layer provides `lower(my_layer&, lowbit::deploy::lowering&)` in its own namespace and calls these
/// members (a monotone elementwise layer: `per_channel` with a copy of itself and its float step).
///
/// @code
/// void lower(my_relu6& l, lowbit::deploy::lowering& c)
/// {
///     c.per_channel(c.name("relu6"), lowbit::deploy::packed_step{lowbit::deploy::clamp_step{0.0f, 6.0f}},
///                   [l](xt::xtensor<float, 2>& x) mutable { x = l.forward(x, {.training = false}); });
/// }
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/deploy/compile_options.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/deploy/padding_classes.hpp>
#include <lowbit/deploy/pool_window.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/deploy/weight_lowering.hpp>

#include <xtensor/xtensor.hpp>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::deploy {

/// @brief A copy of an elementwise float layer, applied in place to rows [n, channels] (evaluation mode).
using float_map = std::function<void(xt::xtensor<float, 2>&)>;

/// @brief The codes of an unsigned code quantizer: `values[c]`, what it writes for code c, and the float
/// boundaries `threshold[c - 1]`, the smallest input it maps to code c or above.
struct code_table {
    std::vector<float> values{};
    std::vector<float> threshold{};
};

namespace detail {
/// The float next to @p x towards +infinity for finite non-negative x (bit patterns of non-negative floats are
/// ordered as integers).
inline float float_of_order(std::uint32_t u) noexcept { return std::bit_cast<float>(u); }
inline std::uint32_t order_of_float(float x) noexcept { return std::bit_cast<std::uint32_t>(x); }
} // namespace detail

/// @brief The code_table of an unsigned @p bits-bit code quantizer whose top code stands for @p top: every
/// value from a copy's forward pass, every boundary by binary search over the non-negative floats.
/// @throws invalid_input when the codes are not increasing (the quantizer is not monotone).
template <class Q>
code_table code_table_of(Q q, int bits, float top)
{
    std::size_t const n = (std::size_t{1} << bits) - 1;
    auto apply = [&](float x) {
        float y = 0.0f;
        q.forward(std::span<float const>(&x, 1), std::span<float>(&y, 1));
        return y;
    };
    code_table t;
    std::vector<float> at(n + 1);  // an input of each code: top c / n
    for (std::size_t c = 0; c <= n; ++c) {
        at[c] = static_cast<float>(static_cast<double>(top) * static_cast<double>(c) / static_cast<double>(n));
        t.values.push_back(apply(at[c]));
        if (c > 0 && !(t.values[c] > t.values[c - 1]))
            throw invalid_input("lowbit::deploy::compile: an activation quantizer writes " +
                                std::to_string(t.values[c - 1]) + " and " + std::to_string(t.values[c]) +
                                " for codes " + std::to_string(c - 1) + " and " + std::to_string(c) +
                                "; its codes must increase");
    }
    for (std::size_t c = 1; c <= n; ++c) {
        // Smallest x in (at[c - 1], at[c]] with apply(x) >= values[c]: lo fails, hi passes.
        std::uint32_t lo = detail::order_of_float(at[c - 1]), hi = detail::order_of_float(at[c]);
        while (hi - lo > 1) {
            std::uint32_t const mid = lo + (hi - lo) / 2;
            (apply(detail::float_of_order(mid)) >= t.values[c] ? hi : lo) = mid;
        }
        t.threshold.push_back(detail::float_of_order(hi));
    }
    return t;
}

/// @brief The state of a model's lowering; see the file comment.
class lowering {
public:
    explicit lowering(compile_options const& options) : options_(options) { options_.input.check(); }

    /// @brief "layer <i> (<kind>)", numbering the layers met so far; the name messages use.
    std::string name(std::string const& kind) { return "layer " + std::to_string(index_++) + " (" + kind + ")"; }

    /// @brief The channels (a feature map's) or features (flat activations) now; 0 before a layer fixed them.
    std::size_t features() const noexcept { return features_; }
    /// @brief The height and width of the feature map now (1 x 1 for flat activations).
    std::size_t height() const noexcept { return height_; }
    std::size_t width() const noexcept { return width_; }

    /// @brief How the activations are encoded now; an open integer layer counts as floats.
    encoding current() const noexcept { return pending_ ? encoding::floats : enc_; }
    /// @brief The float each code (or sign bit: -1, +1) of the current encoding stands for.
    std::span<float const> code_values() const noexcept { return values_; }
    /// @brief The steps emitted so far (deploy::audit reads which of them write a quantizer's codes).
    std::span<packed_step const> steps() const noexcept { return steps_; }

    /// @brief The column order a dense layer right after a flatten reads its inputs in (the packed feature map
    /// is (y, x, c), nn::flatten's (c, y, x)); empty when no flatten is pending. Taking it clears it.
    std::vector<std::size_t> take_flatten_order() { return std::exchange(order_, {}); }

    /// @brief The model's input as images of @p channels channels, of compile_options' height and width: a
    /// layer that reads a feature map calls it first (nothing happens after the input).
    /// @throws invalid_input when compile_options gives no height and width.
    void image_input(std::size_t channels, std::string const& who)
    {
        if (!input_layout_) return;
        if (options_.height == 0 || options_.width == 0)
            throw invalid_input("lowbit::deploy::compile: " + who + " reads images: set compile_options::height and "
                                "width to the input's size");
        // Layers before it ran on the input's flat rows: elementwise ones (an activation on the input) whose steps do
        // not depend on where a value is, so the NHWC step can go first. (A per-feature step would not commute.)
        for (packed_step const& s : steps_)
            if (!std::holds_alternative<clamp_step>(s.op) && !std::holds_alternative<sign_step>(s.op) &&
                !std::holds_alternative<codes_step>(s.op) && !std::holds_alternative<decode_step>(s.op))
                throw invalid_input("lowbit::deploy::compile: " + who + " reads images, but a layer before it works on "
                                    "flat features: start the model with a layer that reads images");
        steps_.insert(steps_.begin(), packed_step{nhwc_step{channels, options_.height, options_.width}});
        features_ = channels;
        inputs_ = channels * options_.height * options_.width;
        height_ = options_.height;
        width_ = options_.width;
        input_layout_ = false;
    }

    /// @brief A dense layer with packed weights @p l (detail::lower_dense, its columns in take_flatten_order()'s
    /// order), named @p who in messages.
    void dense(detail::lowered_dense l, std::string const& who)
    {
        close();
        if (height_ * width_ != 1)
            throw invalid_input("lowbit::deploy::compile: " + who + " reads a " + std::to_string(height_) + "x" +
                                std::to_string(width_) + " feature map; flatten it first (nn::flatten)");
        expect_width(l.w.in, who);
        linear(std::move(l), std::nullopt);
    }

    /// @brief A convolution of geometry @p shape (for the feature map now) with packed weights @p l in patch order
    /// (ky, kx, c), named @p who in messages.
    void conv(kernels::binary_conv2d_shape const& shape, detail::lowered_dense l, std::string const& who)
    {
        close();
        if (shape.channels != features_ || shape.height != height_ || shape.width != width_)
            throw invalid_input("lowbit::deploy::compile: " + who + " reads " + std::to_string(shape.channels) +
                                " channels, but the layer before writes " + std::to_string(features_));
        linear(std::move(l), shape);
        height_ = shape.out_height();
        width_ = shape.out_width();
    }

    /// @brief Max pooling over @p window (on whatever the activations are: sign bits, codes, floats).
    void max_pool(pool_window window, std::string const& who)
    {
        close();
        if (input_layout_)
            throw invalid_input("lowbit::deploy::compile: " + who + " reads images: start the model with a layer "
                                "that knows their channels (a convolution or a BatchNorm)");
        window.check(height_, width_, "lowbit::deploy::compile: " + who + ": ");
        steps_.push_back({max_pool_step{window}});
        raw_input_ = false;
        height_ = window.out(height_);
        width_ = window.out(width_);
    }

    /// @brief nn::flatten: the feature map becomes one row per sample; the next dense layer reads codes or sign
    /// bits in take_flatten_order()'s order.
    void flatten(std::string const& who)
    {
        close();
        if (input_layout_ && options_.height != 0)
            throw invalid_input("lowbit::deploy::compile: " + who + " needs a feature map before it");
        input_layout_ = false;
        std::size_t const c = features_, pixels = height_ * width_;
        if (pixels > 1) steps_.push_back({flatten_step{}});
        // Codes and sign bits stay (y, x, c): the dense layer's columns follow (integer sums are exact in any
        // order). Floats are put in nn::flatten's (c, y, x) order by the step itself.
        if (enc_ != encoding::floats && pixels > 1) {
            order_.resize(c * pixels);
            for (std::size_t q = 0; q < pixels; ++q)
                for (std::size_t ch = 0; ch < c; ++ch) order_[q * c + ch] = ch * pixels + q;
        }
        features_ = c * pixels;
        height_ = width_ = 1;
        raw_input_ = false;
    }

    /// @brief An elementwise layer that is monotone in each channel (BatchNorm, ReLU, hardtanh): @p as_step is its
    /// float step, @p f a copy of the layer that the folding evaluates. @p channels: the width it expects (0: any).
    void per_channel(std::string const& who, packed_step as_step, float_map f, std::size_t channels = 0)
    {
        if (channels != 0) {
            if (!order_.empty())
                throw invalid_input("lowbit::deploy::compile: " + who + " is per feature between a flatten and a "
                                    "dense layer, which is not lowered; put it before the flatten");
            expect_width(channels, who);
        }
        if (pending_) {
            pending_->chain.push_back(std::move(f));
            pending_->steps.push_back(std::move(as_step));
            return;
        }
        decode();
        raw_input_ = false;
        steps_.push_back(std::move(as_step));
    }

    /// @brief A sign quantizer (ste::sign_activation: +1 for x >= 0): sign bits.
    void sign(std::string const& who)
    {
        if (pending_) {
            pending p = take_pending();
            std::vector<sign_thresholds> sets;
            for (affine_output const& y : p.y) {
                level_thresholds const l = fold(p, y, 1, [](float z) { return z < 0.0f ? 0 : 1; }, who);
                sign_thresholds t{std::vector<std::int32_t>(l.size()),
                                  std::vector<std::uint64_t>(kernels::words_for_bits(l.size()), 0)};
                for (std::size_t j = 0; j < l.size(); ++j) {
                    // code = (u >= t) on u = v, or on u = -v: (v <= -t), i.e. not (v >= 1 - t).
                    t.threshold[j] = l.negate[j] != 0 ? 1 - l.threshold[j] : l.threshold[j];
                    if (l.negate[j] != 0) t.flip[j / 64] |= std::uint64_t{1} << (j % 64);
                }
                sets.push_back(std::move(t));
            }
            emit(std::move(p), std::move(sets));
        } else {
            decode();
            steps_.push_back({sign_step{}});
        }
        raw_input_ = false;
        enc_ = encoding::signs;
        values_ = {-1.0f, 1.0f};
    }

    /// @brief A quantizer of unsigned @p bits-bit codes (1..8) whose table is @p t (code_table_of) and whose copy
    /// @p q maps floats in place.
    void codes(std::string const& who, int bits, code_table t, std::function<void(std::span<float>)> q)
    {
        std::size_t const n = (std::size_t{1} << bits) - 1;
        if (pending_) {
            pending p = take_pending();
            std::vector<level_thresholds> sets;
            for (affine_output const& y : p.y) sets.push_back(fold_values(p, y, n, q, t.values, who));
            emit(std::move(p), std::move(sets));
        } else {
            decode();
            steps_.push_back({codes_step{t.threshold, t.values}});
        }
        raw_input_ = false;
        enc_ = encoding::codes;
        unit_ = static_cast<double>(t.values.back()) / static_cast<double>(n);
        zero_ = 0.0;
        code_max_ = static_cast<std::int64_t>(n);
        values_ = std::move(t.values);
    }

    /// @brief A residual block y = inner(x) + x: @p inner lowers the block's layers into a lowering of its own.
    template <class Inner>
    void residual(std::string const& who, Inner&& inner)
    {
        close();
        // The block starts from this state, without the steps so far.
        std::vector<packed_step> outer = std::exchange(steps_, {});
        lowering sub = *this;
        steps_ = std::move(outer);
        std::forward<Inner>(inner)(sub);
        sub.close();
        sub.decode();
        index_ = sub.index_;
        // A block that starts the model may have fixed the input (its first layer, or the NHWC step it emitted).
        std::vector<packed_step> steps = std::move(sub.steps_);
        if (features_ == 0 || (input_layout_ && !sub.input_layout_)) {
            if (!steps.empty() && std::holds_alternative<nhwc_step>(steps.front().op)) {
                steps_.push_back(std::move(steps.front()));
                steps.erase(steps.begin());
                height_ = options_.height;
                width_ = options_.width;
            }
            inputs_ = sub.inputs_;
            features_ = sub.inputs_ / (height_ * width_);
        }
        if (sub.features_ != features_ || sub.height_ != height_ || sub.width_ != width_)
            throw invalid_input("lowbit::deploy::compile: " + who + ": the inner block maps " +
                                std::to_string(features_) + " features to " + std::to_string(sub.features_) +
                                "; a residual block keeps the shape");
        residual_step r;
        r.inner = std::move(steps);
        if (enc_ != encoding::floats) r.shortcut.values = values_;
        steps_.push_back({std::move(r)});
        enc_ = encoding::floats;
        raw_input_ = false;
        input_layout_ = false;
    }

    /// @brief The packed model: an open integer layer gets float outputs, and codes or signs at the end are decoded.
    /// @throws invalid_input when no layer fixed the input width, or the model ends on a feature map.
    packed_model finish()
    {
        close();
        decode();
        if (inputs_ == 0) throw invalid_input("lowbit::deploy::compile: the model has no layer that fixes its input width");
        if (height_ * width_ != 1)
            throw invalid_input("lowbit::deploy::compile: the model ends on a feature map; flatten it (nn::flatten)");
        return packed_model(inputs_, features_, std::move(steps_));
    }

private:
    struct pending {
        layer_input input = layer_input::codes;
        packed_weights w;
        std::optional<kernels::binary_conv2d_shape> conv;
        std::vector<affine_output> y;  ///< one per padding class of a convolution on input codes, else one
        std::int64_t bound = 0;
        std::vector<float_map> chain;
        std::vector<packed_step> steps;
    };

    void expect_width(std::size_t width, std::string const& who)
    {
        if (features_ == 0) {
            features_ = width;
            if (inputs_ == 0) inputs_ = width;
        }
        if (width != features_)
            throw invalid_input("lowbit::deploy::compile: " + who + " reads " + std::to_string(width) +
                                " features, but the layer before writes " + std::to_string(features_));
    }

    /// A dense layer (@p shape empty) or a convolution, after close().
    void linear(detail::lowered_dense l, std::optional<kernels::binary_conv2d_shape> shape)
    {
        std::size_t const out = l.w.out;
        if (enc_ == encoding::floats && raw_input_) {  // the model's input: 8-bit codes of the input map
            steps_.push_back({input_codes_step{options_.input}});
            enc_ = encoding::codes;
            unit_ = options_.input.scale;
            zero_ = options_.input.offset;
            code_max_ = 255;
        }
        if (enc_ == encoding::floats) {
            std::vector<float> bias = std::move(l.bias);
            if (shape)
                steps_.push_back({float_conv_step(*shape, std::move(l.w), std::move(bias))});
            else
                steps_.push_back({float_dense_step(std::move(l.w), std::move(bias))});
        } else {
            pending p;
            bool const codes = enc_ == encoding::codes;
            p.input = codes ? layer_input::codes : layer_input::signs;
            p.bound = detail::integer_bound(l, codes ? code_max_ : 1);
            affine_output y;
            y.a = codes ? unit_ : 1.0;
            y.step = l.step;
            y.bias = l.bias.empty() ? std::vector<float>(out, 0.0f) : l.bias;
            // The input's zero point times the levels the sums leave out: a convolution on codes whose code 0 is
            // not 0 leaves out its padded taps, so each padding class has its own level sums.
            double const zero = codes ? zero_ : 0.0;
            std::vector<std::vector<std::int64_t>> sums{l.level_sum};
            if (shape && zero != 0.0) {
                sums.clear();
                for (padding_classes::taps const& taps : padding_classes::of(*shape).valid)
                    sums.push_back(detail::class_level_sums(l, *shape, taps));
            }
            for (std::vector<std::int64_t> const& d : sums) {
                y.offset.assign(out, 0.0);
                for (std::size_t j = 0; j < out; ++j) y.offset[j] = zero * static_cast<double>(d[j]);
                p.y.push_back(y);
            }
            l.w.scale.clear();  // in the thresholds or the float outputs
            p.w = std::move(l.w);
            p.conv = shape;
            pending_ = std::move(p);
        }
        raw_input_ = false;
        input_layout_ = false;
        enc_ = encoding::floats;
        features_ = out;
    }

    pending take_pending()
    {
        pending p = std::move(*pending_);
        pending_.reset();
        return p;
    }

    /// The integer step of @p p with the output sets @p sets (one per entry of p.y).
    template <class Set>
    void emit(pending p, std::vector<Set> sets)
    {
        if (p.conv) {
            steps_.push_back({integer_conv_step(p.input, *p.conv, std::move(p.w), std::move(sets))});
        } else {
            steps_.push_back({integer_dense_step(p.input, std::move(p.w), std::move(sets.front()))});
        }
    }

    /// An open integer layer gets float outputs, followed by its collected layers as float steps.
    void close()
    {
        if (!pending_) return;
        pending p = take_pending();
        std::vector<packed_step> after = std::move(p.steps);
        std::vector<affine_output> y = p.y;
        emit(std::move(p), std::move(y));
        for (packed_step& s : after) steps_.push_back(std::move(s));
        enc_ = encoding::floats;
    }

    /// Codes or signs become floats (for a float layer after them).
    void decode()
    {
        if (enc_ == encoding::floats) return;
        steps_.push_back({decode_step{values_}});
        enc_ = encoding::floats;
    }

    /// The float outputs of @p p's chain for n rows of integers v (level-major, channels fastest), pre-activation @p y.
    static xt::xtensor<float, 2> chain_of(pending& p, affine_output const& y, std::vector<std::int64_t> const& v,
                                          std::size_t rows)
    {
        std::size_t const c = p.w.out;
        xt::xtensor<float, 2> z = xt::xtensor<float, 2>::from_shape({rows, c});
        for (std::size_t i = 0; i < rows * c; ++i) z.data()[i] = y.value(i % c, v[i]);
        for (float_map& f : p.chain) f(z);
        return z;
    }

    /// The thresholds of code(chain(y(v))) with @p n levels, code a function of each float output.
    template <class Code>
    level_thresholds fold(pending& p, affine_output const& y, std::size_t n, Code code, std::string const& who)
    {
        check_bound(p, who);
        std::size_t const c = p.w.out;
        return detail::fold_codes(c, n, -p.bound, p.bound, [&](std::vector<std::int64_t> const& v) {
            xt::xtensor<float, 2> const z = chain_of(p, y, v, n);
            std::vector<int> out(n * c);
            for (std::size_t i = 0; i < n * c; ++i) out[i] = code(z.data()[i]);
            return out;
        });
    }

    /// The thresholds of the codes quantizer @p q writes after @p p's chain, read back through its @p values.
    level_thresholds fold_values(pending& p, affine_output const& y, std::size_t n,
                                 std::function<void(std::span<float>)> const& q, std::vector<float> const& values,
                                 std::string const& who)
    {
        check_bound(p, who);
        std::size_t const c = p.w.out;
        return detail::fold_codes(c, n, -p.bound, p.bound, [&](std::vector<std::int64_t> const& v) {
            xt::xtensor<float, 2> z = chain_of(p, y, v, n);
            q(std::span<float>(z.data(), z.size()));
            std::vector<int> out(n * c);
            for (std::size_t i = 0; i < n * c; ++i) {
                auto const it = std::lower_bound(values.begin(), values.end(), z.data()[i]);
                if (it == values.end() || *it != z.data()[i])
                    throw invalid_input("lowbit::deploy::compile: " + who + " wrote " + std::to_string(z.data()[i]) +
                                        ", which is none of its codes' values");
                out[i] = static_cast<int>(it - values.begin());
            }
            return out;
        });
    }

    static void check_bound(pending const& p, std::string const& who)
    {
        constexpr std::int64_t limit = std::numeric_limits<std::int32_t>::max() - 1;
        if (p.bound > limit)
            throw invalid_input("lowbit::deploy::compile: the integer sums before " + who + " could leave int32");
    }

    compile_options options_;
    std::size_t index_ = 0;
    std::size_t inputs_ = 0;
    std::size_t features_ = 0;
    std::size_t height_ = 1, width_ = 1;  ///< the feature map's size (1 x 1: flat)
    std::vector<std::size_t> order_{};    ///< the column order after a flatten, for the next dense layer
    encoding enc_ = encoding::floats;
    bool raw_input_ = true;        ///< the activations are the model's float input
    bool input_layout_ = true;     ///< ... still in its flat (NCHW) layout, elementwise layers aside
    double unit_ = 1.0;            ///< codes: the value of one code step ...
    double zero_ = 0.0;            ///< ... and of code 0 (input codes: the input map's offset)
    std::int64_t code_max_ = 255;  ///< codes: the largest code
    std::vector<float> values_{};  ///< codes or signs: the float each stands for
    std::optional<pending> pending_{};
    std::vector<packed_step> steps_{};
};

} // namespace lowbit::deploy
