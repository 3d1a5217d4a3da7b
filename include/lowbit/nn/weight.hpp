// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::weight<Policy>: a layer weight whose storage the training method chooses.
///
/// | storage          | held                              | forward uses            | update                          |
/// |------------------|-----------------------------------|-------------------------|---------------------------------|
/// | full_precision   | float w                           | w                       | w <- w - s                      |
/// | shadow (BC, QAT) | float shadow w                    | Q(w) (float w at eval    | w <- clip(w - s)                |
/// |                  |                                   | for stochastic Q)       |                                 |
/// | packed (SR, R)   | only the packed codes of Q(w)     | dequantized codes       | w <- Q(w - s) on a fixed grid   |
///
/// s is the optimizer's step. In packed storage the weight really takes bits/32 of the float bytes
/// (weight_bytes()); the float values exist only transiently, in a per-thread workspace, while a layer runs.

#include <lowbit/config.hpp>
#include <lowbit/io/state.hpp>
#include <lowbit/kernels/changed_codes.hpp>
#include <lowbit/kernels/pack.hpp>
#include <lowbit/kernels/quantize_params.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/quant/clipping.hpp>
#include <lowbit/quant/policy_traits.hpp>
#include <lowbit/nn/parameter.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>
#include <lowbit/random/philox.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace lowbit::nn {

/// @brief Weight policy of a layer that always stays in float, whatever the training method (for
/// example the first and last layers of a binary network).
struct float_weights_t : float_policy {};
inline constexpr float_weights_t float_weights{};

/// @brief What a layer's weight may be templated on: a Quantizer (quantized by the library's kernels, with the
/// plain straight-through estimator), a lowbit::ste fake quantizer (DoReFa, XNOR, TWN, LSQ, ...: its own
/// backward turns the gradient with respect to Q(w) into one with respect to w), or float_weights_t.
template <class P>
concept WeightPolicy = Quantizer<P> || ste::FakeQuantizer<P> || std::same_as<P, float_weights_t>;

/// @brief How a weight is held; set by the training method when it binds a model. A weight with a quantizing
/// policy starts in shadow storage (its forward values are Q(w)); float_weights_t stays full_precision.
enum class weight_storage : std::uint8_t { full_precision, shadow, packed };

namespace detail {
/// Scratch floats for dequantized packed weights, one buffer per thread, reused by every layer.
inline std::span<float> weight_workspace(std::size_t n)
{
    thread_local std::vector<float> buffer;
    if (buffer.size() < n) buffer.resize(n);
    return {buffer.data(), n};
}
} // namespace detail

/// @brief A layer weight with a storage chosen by the training method. Row-major, output channels along
/// axis 0 (dense: [out, in]; conv: [out, in, kh, kw]).
template <WeightPolicy P>
class weight {
public:
    using policy_type = P;
    static constexpr bool quantized = Quantizer<P>;
    static constexpr bool fake_quantized = ste::FakeQuantizer<P>;
    /// The policy rescales its output in training and folds the scale into the layer's bias in evaluation
    /// (ste::sat_rescale): forward_values() in evaluation returns the unscaled values, and eval_output_scale()
    /// the factor the layer must divide its bias by.
    static constexpr bool folds_scale_into_bias = requires { requires P::folds_scale_into_bias; };

    /// See folds_scale_into_bias: the scale folded out of the last forward_values(), 1 if none was.
    float eval_output_scale() const noexcept
    {
        if constexpr (folds_scale_into_bias) {
            if (folded_) return policy_.scale();
        }
        return 1.0f;
    }

    weight() = default;
    explicit weight(std::vector<std::size_t> shape, P policy = {})
        : shape_(std::move(shape)), w_(count(shape_), 0.0f), grad_(w_.size(), 0.0f), policy_(policy)
    {
        if constexpr (fake_quantized) policy_.bind(shape_);
    }

    std::span<std::size_t const> shape() const noexcept { return shape_; }
    std::size_t size() const noexcept { return grad_.size(); }
    weight_storage storage() const noexcept { return storage_; }
    P& policy() noexcept { return policy_; }
    P const& policy() const noexcept { return policy_; }
    /// Stream id of this weight's stochastic draws (set by the training method).
    std::uint32_t stream() const noexcept { return stream_; }

    /// The float values (full_precision, shadow). Packed weights have none: throws invalid_input.
    std::span<float> master()
    {
        require_float("master()");
        return w_;
    }
    std::span<float const> master() const
    {
        require_float("master()");
        return w_;
    }
    /// Gradient of the loss with respect to the values used in the forward pass.
    std::span<float> grad() noexcept { return grad_; }
    std::span<float const> grad() const noexcept { return grad_; }

    /// Current real values, whatever the storage (a copy; for checks and checkpoints).
    std::vector<float> values() const
    {
        if (storage_ != weight_storage::packed) return w_;
        std::vector<float> out(size());
        dequantize_into(out);
        return out;
    }

    /// @brief Sets the real values, whatever the storage (for checkpoints: the counterpart of values()).
    /// Float storage (full_precision, shadow) takes them exactly, and a shadow weight's cached Q(w) is dropped;
    /// the storage's rule (shadow clipping) applies from the next step on, as for values set through master().
    /// Packed storage re-quantizes them: the grid steps are fixed again from the policy's clipping of the new
    /// values, and every value is rounded to the nearest level (ties to even) whatever the policy's rounding,
    /// so that assigning is deterministic and values already on that grid are kept exactly.
    /// @throws invalid_input when the count differs from size(), or for NaN values into packed storage; the
    /// weight is unchanged then.
    void assign(std::span<float const> v)
    {
        if (v.size() != size())
            throw invalid_input("lowbit::nn::weight::assign: expected " + std::to_string(size()) + " values, got " +
                                std::to_string(v.size()));
        if constexpr (quantized) {
            if (storage_ == weight_storage::packed) {
                std::vector<float> steps = slice_steps(v);
                std::vector<std::uint8_t> codes(codes_.size());
                encode<nearest_even_t>(v, steps, random::counter_key{.seed = 0, .step = 0, .stream = stream_}, codes);
                steps_ = std::move(steps);
                codes_ = std::move(codes);
                return;
            }
        }
        std::copy(v.begin(), v.end(), w_.begin());
        wq_.clear();
    }

    /// The values the layer multiplies with in this forward pass. A layer with a bias may ask for the
    /// evaluation form of a policy that folds its scale into the bias (`fold_into_bias`, see
    /// folds_scale_into_bias); the layer then divides its bias by eval_output_scale().
    std::span<float const> forward_values(forward_context const& ctx, bool fold_into_bias = false)
    {
        folded_ = false;
        if constexpr (fake_quantized) {
            if (storage_ == weight_storage::shadow) {
                wq_.resize(size());
                if constexpr (folds_scale_into_bias) {
                    // SAT's evaluation form: unscaled weights; the layer divides its bias by scale().
                    if (!ctx.training && fold_into_bias) {
                        policy_.forward_unscaled(w_, wq_);
                        folded_ = true;
                        return wq_;
                    }
                }
                policy_.forward(w_, wq_);
                if (ctx.training) count_shadow_changes();
                return wq_;
            }
        }
        if constexpr (quantized) {
            if (storage_ == weight_storage::shadow) {
                // Stochastic BinaryConnect evaluates with the real-valued weights (Courbariaux et al. 2015).
                if (!ctx.training && StochasticRounding<typename P::rounding_type>) return w_;
                quantize_shadow(random::counter_key{.seed = ctx.seed, .step = ctx.step, .stream = stream_});
                if (ctx.training) count_shadow_changes();
                return wq_;
            }
            if (storage_ == weight_storage::packed) {
                auto ws = lowbit::nn::detail::weight_workspace(size());
                dequantize_into(ws);
                return ws;
            }
        }
        return w_;
    }

    /// The same values again, for the backward pass (packed weights are dequantized again rather than
    /// kept, so that only their codes stay resident).
    std::span<float const> backward_values()
    {
        if constexpr (fake_quantized) {
            if (storage_ == weight_storage::shadow && !wq_.empty()) return wq_;
        }
        if constexpr (quantized) {
            if (storage_ == weight_storage::shadow && !wq_.empty()) return wq_;
            if (storage_ == weight_storage::packed) {
                auto ws = lowbit::nn::detail::weight_workspace(size());
                dequantize_into(ws);
                return ws;
            }
        }
        return w_;
    }

    /// Changes the storage. To packed: the grid steps are fixed now, from the policy's clipping of the current
    /// values, and the values are rounded onto it with the policy's rounding; the float values are freed.
    void store_as(weight_storage s, std::uint32_t stream, std::uint64_t seed = 0)
    {
        stream_ = stream;
        if constexpr (fake_quantized) {
            (void)seed;
            if (s == weight_storage::packed)
                throw invalid_input("lowbit::nn::weight: a lowbit::ste fake quantizer has no packed storage; train it "
                                    "with a shadow-weight method (binary_connect, sqwa)");
            storage_ = s;
            wq_.clear();
            return;
        } else if constexpr (!quantized) {
            (void)s;
            (void)seed;
            return;  // float weights stay float
        } else {
            if (s == storage_) return;
            if (storage_ == weight_storage::packed) {  // back to float
                w_ = values();
                codes_.clear();
                codes_.shrink_to_fit();
            }
            storage_ = s;
            wq_.clear();
            if (s == weight_storage::packed) {
                fix_grid();
                codes_.assign(kernels::packed_bytes(size(), P::bits), 0);
                quantize_to_codes(w_, random::counter_key{.seed = seed, .step = 0, .stream = stream_});
                w_.clear();
                w_.shrink_to_fit();
            }
        }
    }

    /// @brief Float storage (full_precision, shadow): w <- w - s, the bare step; the training method applies its
    /// rule around it (train/: BinaryConnect clips the shadow weights after it).
    /// @throws invalid_input for packed storage, which has no float values to step (step_on_grid does that).
    void subtract(std::span<float const> s)
    {
        require_float("subtract()");
        for (std::size_t i = 0; i < w_.size(); ++i) w_[i] -= s[i];
    }

    /// @brief Clips float (shadow) values to the range of the policy's grid (a fixed_range clipping); nothing for
    /// other clippings, float policies and packed storage.
    void clip_to_range()
    {
        if (storage_ != weight_storage::packed) clip_shadow();
    }

    /// @brief Packed storage: the values Q(w) - s rounded back onto the fixed grid with the policy's rounding
    /// (stochastic: Li et al.'s SR; deterministic: R), the draws from @p key; the changed codes are counted
    /// (value_changes()). Nothing for float storage and float policies.
    void step_on_grid(std::span<float const> s, random::counter_key key)
    {
        if constexpr (quantized) {
            if (storage_ != weight_storage::packed) return;
            auto ws = lowbit::nn::detail::weight_workspace(size());
            dequantize_into(ws);
            for (std::size_t i = 0; i < ws.size(); ++i) ws[i] -= s[i];
            previous_.assign(codes_.begin(), codes_.end());
            quantize_to_codes(ws, key);
            changes_ += kernels::changed_codes(previous_.data(), codes_.data(), size(), P::bits);
        } else {
            (void)s;
            (void)key;
        }
    }

    /// @brief Completes the backward pass: grad() held the gradient with respect to the forward values Q(w);
    /// for a lowbit::ste policy it becomes the gradient with respect to w through the policy's own backward
    /// (and the policy's learned parameters get theirs). For a Quantizer policy the straight-through
    /// estimator makes the two equal, so nothing changes. The trainer calls it after the model's backward.
    void finish_backward()
    {
        if constexpr (fake_quantized) {
            if (storage_ == weight_storage::shadow) {
                // Swap rather than copy: backward() writes every element of dx, so the old dq_ buffer can
                // take the result (no pointer into grad_ outlives a step).
                dq_.swap(grad_);
                grad_.resize(dq_.size());
                policy_.backward(dq_, grad_);
            }
        }
    }

    /// @brief Visits the learned parameters of the weight's policy (LSQ's step), as kind `clipping`.
    template <class F>
    void for_each_parameter(F&& f)
    {
        if constexpr (ste::LearnedFakeQuantizer<P>) {
            // A policy that learns nothing (an erased XNOR or DoReFa weight) has no parameter to visit.
            if (policy_.parameters().empty()) return;
            parameter p{ste::parameter_name_of(policy_), policy_.parameters(), policy_.gradients(),
                        parameter_kind::clipping};
            f(p);
        }
    }

    /// Bytes held for the values: 4 per value in float storage; the packed codes and the steps otherwise.
    std::size_t weight_bytes() const noexcept
    {
        return storage_ == weight_storage::packed ? codes_.size() + steps_.size() * sizeof(float)
                                                  : w_.size() * sizeof(float);
    }

    /// @brief How many quantized values have changed since the weight was made: for packed storage (SR, R) the
    /// codes each step changed; for shadow storage (BC, SQWA, QAT) the values of Q(w) that differ from those of
    /// the previous training forward pass. Li et al.'s flips: R keeps every weight once a step is below half a
    /// grid step, and this count shows it. Float weights never count. Not part of the run state.
    std::uint64_t value_changes() const noexcept { return changes_; }

    /// The number of values held quantized (packed or shadow storage of a quantizing policy), 0 otherwise: what
    /// value_changes() counts over.
    std::size_t quantized_size() const noexcept
    {
        if constexpr (quantized || fake_quantized)
            return storage_ == weight_storage::full_precision ? 0 : size();
        else
            return 0;
    }

    /// @brief Writes the part of the weight's state that values() does not give back exactly (io::Stateful):
    /// for packed storage the codes (entry `<prefix>codes`, uint8) and the fixed grid steps (`<prefix>steps`),
    /// since assign() would fix the grid afresh and round with nearest rounding. Float and shadow storage write
    /// nothing: their values() are their state, and a checkpoint holds them as the model's tensors.
    void save_state(io::archive& a, std::string const& prefix) const
    {
        if (storage_ != weight_storage::packed) return;
        a.add(prefix + "codes", {codes_.size()}, codes_);
        a.add(prefix + "steps", {steps_.size()}, steps_);
    }

    /// @brief Restores what save_state wrote into a weight already in the same storage (the trainer binds the
    /// storage before it loads), checking sizes first.
    /// @throws io::io_error naming the file for a missing entry or a size that does not fit this weight (a
    /// checkpoint of another bit width or granularity); the weight is unchanged then.
    void load_state(io::archive const& a, std::string const& prefix)
    {
        if (storage_ != weight_storage::packed) return;
        std::vector<std::size_t> const code_shape{codes_.size()};
        std::vector<std::size_t> const step_shape{steps_.size()};
        std::vector<std::uint8_t> codes = a.integers<std::uint8_t>(prefix + "codes", code_shape);
        auto const steps = a.values(prefix + "steps", step_shape);
        codes_ = std::move(codes);
        steps_.assign(steps.begin(), steps.end());
    }

    /// The packed codes (packed storage only) and their steps, one per slice.
    std::span<std::uint8_t const> codes() const noexcept { return codes_; }
    std::span<float const> steps() const noexcept { return steps_; }

private:
    static std::size_t count(std::vector<std::size_t> const& s)
    {
        return std::accumulate(s.begin(), s.end(), std::size_t{1}, std::multiplies<>{});
    }

    void require_float(char const* what) const
    {
        if (storage_ == weight_storage::packed)
            throw invalid_input(std::string("lowbit::nn::weight::") + what +
                                ": the weight is stored as packed codes (stochastic_rounding / rounded training); "
                                "use values() for a float copy");
    }

    std::size_t channels() const noexcept
    {
        if constexpr (quantized) {
            if constexpr (std::is_same_v<typename P::granularity_type, per_channel_t>)
                return shape_.empty() ? 1 : shape_[0];
        }
        return 1;
    }

    // ---- quantized storage helpers (only instantiated for quantizers) ----

    static constexpr level_range levels() noexcept
    {
        if constexpr (quantized)
            return P::grid_type::template levels<P::bits>();
        else
            return {0, 0, 0.0f};
    }

    /// Shadow weights -> Q(w) in wq_, with the bound recomputed from the current shadow weights.
    void quantize_shadow(random::counter_key key)
    {
        if constexpr (quantized) {
            std::vector<float> steps = slice_steps(w_);
            wq_.resize(size());
            quantize_dequantize(w_, steps, key, wq_);
        }
    }

    std::vector<float> slice_steps(std::span<float const> values) const
    {
        std::vector<float> st(channels());
        std::size_t const len = size() / st.size();
        if constexpr (quantized) {
            if constexpr (TransformingClipping<typename P::clipping_type>) {
                std::vector<float> mapped(values.size());
                for (std::size_t c = 0; c < st.size(); ++c)
                    policy_.clipping.transform(values.subspan(c * len, len), std::span<float>(mapped).subspan(c * len, len));
                for (std::size_t c = 0; c < st.size(); ++c)
                    st[c] = levels().step_for_range(policy_.clipping.range(std::span<float const>(mapped).subspan(c * len, len), levels()));
            } else {
                for (std::size_t c = 0; c < st.size(); ++c)
                    st[c] = levels().step_for_range(policy_.clipping.range(values.subspan(c * len, len), levels()));
            }
        }
        return st;
    }

    void quantize_dequantize(std::span<float const> in, std::vector<float> const& steps, random::counter_key key,
                             std::span<float> out) const
    {
        if constexpr (quantized) {
            std::vector<float> mapped;
            if constexpr (TransformingClipping<typename P::clipping_type>) {
                mapped.resize(in.size());
                std::size_t const len = size() / steps.size();
                for (std::size_t c = 0; c < steps.size(); ++c)
                    policy_.clipping.transform(in.subspan(c * len, len), std::span<float>(mapped).subspan(c * len, len));
                in = mapped;
            }
            std::vector<std::uint8_t> codes(kernels::packed_bytes(size(), P::bits));
            encode(in, steps, key, codes);
            decode(codes, steps, out);
        }
    }

    /// Quantizes and packs with the policy's rounding, or with Rounding when one is given (assign()).
    template <class Rounding = void>
    void encode(std::span<float const> in, std::vector<float> const& steps, random::counter_key key,
                std::span<std::uint8_t> codes) const
    {
        if constexpr (quantized) {
            using rounding = std::conditional_t<std::is_void_v<Rounding>, typename P::rounding_type, Rounding>;
            constexpr bool wraps = std::is_same_v<typename P::overflow_type, wrap_t>;
            std::vector<kernels::quantize_params> params(steps.size());
            for (std::size_t c = 0; c < steps.size(); ++c)
                params[c] = kernels::make_quantize_params(levels(), P::bits, steps[c], wraps, key);
            std::size_t const nans = kernels::quantize_pack<rounding>(
                in.data(), size(), size() / steps.size(), params.data(), P::bits, codes.data());
            if (nans != 0)
                throw invalid_input("lowbit::nn::weight: " + std::to_string(nans) +
                                    " weight value(s) are NaN (a NaN gradient or learning rate reached them)");
        }
    }

    void decode(std::span<std::uint8_t const> codes, std::vector<float> const& steps, std::span<float> out) const
    {
        if constexpr (quantized) {
            std::vector<kernels::dequantize_params> params(steps.size());
            for (std::size_t c = 0; c < steps.size(); ++c) params[c] = kernels::make_dequantize_params(levels(), steps[c]);
            kernels::unpack_dequantize(codes.data(), size(), size() / steps.size(), params.data(), P::bits, out.data());
        }
    }

    void fix_grid() { steps_ = slice_steps(w_); }

    /// After a training forward pass of shadow storage: counts the values of Q(w) that differ from the previous
    /// training pass's, and keeps these for the next (evaluation passes, which may give another form, are not
    /// compared; nothing is counted on the first pass).
    void count_shadow_changes()
    {
        if (wq_previous_.size() != wq_.size()) {
            wq_previous_.assign(wq_.begin(), wq_.end());
            return;
        }
        std::size_t changed = 0;
        for (std::size_t i = 0; i < wq_.size(); ++i) {
            changed += wq_[i] != wq_previous_[i] ? 1 : 0;
            wq_previous_[i] = wq_[i];
        }
        changes_ += changed;
    }

    void quantize_to_codes(std::span<float const> values, random::counter_key key) { encode(values, steps_, key, codes_); }

    void dequantize_into(std::span<float> out) const { decode(codes_, steps_, out); }

    /// BinaryConnect clips the shadow weights to the grid's range, so that they cannot drift beyond the
    /// outermost level and stop flipping. Only a fixed bound defines a range to clip to; bounds derived from
    /// the weights themselves (max_abs, mean_abs, ...) move with them, and clipping to them would be wrong.
    void clip_shadow()
    {
        if constexpr (quantized) {
            if constexpr (std::is_same_v<typename P::clipping_type, clip::fixed_range>) {
                float const step = levels().step_for_range(policy_.clipping.bound);
                float const lo = (static_cast<float>(levels().qmin) + levels().offset) * step;
                float const hi = (static_cast<float>(levels().qmax) + levels().offset) * step;
                for (float& v : w_) v = std::clamp(v, lo, hi);
            }
        }
    }

    std::vector<std::size_t> shape_;
    std::vector<float> w_;              // float values (full_precision / shadow)
    std::vector<float> wq_;             // Q(w) of the last training forward pass (shadow)
    std::vector<float> grad_;           // gradient w.r.t. the forward values
    std::vector<float> dq_;             // scratch for finish_backward
    std::vector<float> wq_previous_;    // Q(w) of the last training forward pass (shadow; flip counting)
    std::vector<std::uint8_t> codes_;   // packed codes (packed)
    std::vector<std::uint8_t> previous_; // the codes before the last step (packed; flip counting)
    std::vector<float> steps_;          // fixed grid steps (packed)
    P policy_{};
    // A quantizing policy computes with Q(w) from the moment the weight is built: shadow storage, until a
    // training method binds another (full_precision keeps float values, SR and R pack them).
    weight_storage storage_ = quantized || fake_quantized ? weight_storage::shadow : weight_storage::full_precision;
    std::uint32_t stream_ = 0;
    bool folded_ = false;               // the last forward_values() folded the policy's scale out
    std::uint64_t changes_ = 0;         // value_changes()
};

} // namespace lowbit::nn
