// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief nn::weight<Policy>: a layer weight held in the state its training method names (nn/weight_state.hpp):
/// float values, float shadow values plus Q(w), or only the packed codes of Q(w) (a qtensor<Policy>). In packed
/// state the weight really takes bits/32 of the float bytes (weight_bytes()); the float values exist only
/// transiently, in a per-thread workspace, while a layer runs. The update rules are the methods' (train/).

#include <lowbit/config.hpp>
#include <lowbit/io/state.hpp>
#include <lowbit/kernels/changed_codes.hpp>
#include <lowbit/kernels/pack.hpp>
#include <lowbit/kernels/quantize_params.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/quant/clipping.hpp>
#include <lowbit/quant/policy_traits.hpp>
#include <lowbit/nn/parameter.hpp>
#include <lowbit/nn/weight_state.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>
#include <lowbit/random/philox.hpp>
#include <lowbit/tensor/qtensor.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <variant>
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

namespace detail {
/// Scratch floats for dequantized packed weights, one buffer per thread, reused by every layer.
inline std::span<float> weight_workspace(std::size_t n)
{
    thread_local std::vector<float> buffer;
    if (buffer.size() < n) buffer.resize(n);
    return {buffer.data(), n};
}

/// The data of each weight state (nn/weight_state.hpp); packed_state's exists only for a Quantizer policy.
struct float_weight_data {
    std::vector<float> w;
};
struct shadow_weight_data {
    std::vector<float> w{};
    std::vector<float> wq{};           // Q(w) of the last forward pass that quantized
    std::vector<float> wq_previous{};  // Q(w) of the last training forward pass (flip counting)
};
template <class P>
struct packed_weight_data {
    qtensor<P> q{};                        // the codes of Q(w) and their fixed grid steps
    std::vector<std::uint8_t> previous{};  // the codes before the last step (flip counting)
};
template <class P>
using weight_data = std::variant<float_weight_data, shadow_weight_data,
                                 std::conditional_t<Quantizer<P>, packed_weight_data<P>, std::monostate>>;
} // namespace detail

/// @brief A layer weight held in the state its training method binds (nn/weight_state.hpp). Row-major, output
/// channels along axis 0 (dense: [out, in]; conv: [out, in, kh, kw]).
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
    /// A quantizing policy starts in shadow_state (the layer computes with Q(w) at once), a float one in
    /// float_state.
    explicit weight(std::vector<std::size_t> shape, P policy = {})
        : shape_(std::move(shape)), grad_(count(shape_), 0.0f), policy_(policy)
    {
        if constexpr (quantized || fake_quantized)
            data_ = detail::shadow_weight_data{.w = std::vector<float>(size(), 0.0f)};
        else
            data_ = detail::float_weight_data{.w = std::vector<float>(size(), 0.0f)};
        if constexpr (fake_quantized) policy_.bind(shape_);
    }

    std::span<std::size_t const> shape() const noexcept { return shape_; }
    std::size_t size() const noexcept { return grad_.size(); }
    P& policy() noexcept { return policy_; }
    P const& policy() const noexcept { return policy_; }
    /// Stream id of this weight's stochastic draws (set by the training method).
    std::uint32_t stream() const noexcept { return stream_; }

    /// @brief Whether the weight is held in state @p S now.
    template <WeightState S>
    bool holds() const noexcept
    {
        if constexpr (std::same_as<S, float_state>)
            return std::holds_alternative<detail::float_weight_data>(data_);
        else if constexpr (std::same_as<S, shadow_state>)
            return std::holds_alternative<detail::shadow_weight_data>(data_);
        else
            return data_.index() == 2;
    }

    /// @brief Binds the state a training method keeps (nn/weight_state.hpp), with stream id @p stream for the
    /// weight's stochastic draws. Into packed_state: the grid steps are fixed now, from the policy's clipping of
    /// the current values, and the values are rounded onto it with the policy's rounding (draws from @p seed);
    /// the float values are freed. Out of it: the values are the dequantized codes. A float policy stays in
    /// float_state whatever is bound.
    /// @throws invalid_input for packed_state with a lowbit::ste policy (it has no packed codes to keep).
    template <WeightState S>
    void bind(S, std::uint32_t stream, std::uint64_t seed = 0)
    {
        stream_ = stream;
        if constexpr (!quantized && !fake_quantized) {
            (void)seed;  // float weights stay float
        } else if constexpr (std::same_as<S, packed_state>) {
            if constexpr (fake_quantized) {
                (void)seed;
                throw invalid_input("lowbit::nn::weight: a lowbit::ste fake quantizer has no packed state; train it "
                                    "with a shadow-weight method (binary_connect, sqwa)");
            } else {
                if (holds<packed_state>()) return;
                std::vector<float> w = values();
                std::vector<float> steps = slice_steps(w);
                std::vector<std::uint8_t> codes(kernels::packed_bytes(size(), P::bits));
                encode(w, steps, random::counter_key{.seed = seed, .step = 0, .stream = stream_}, codes);
                data_ = detail::packed_weight_data<P>{.q = qtensor<P>(shape_, std::move(codes), std::move(steps))};
            }
        } else {
            (void)seed;
            if (holds<S>()) {
                if constexpr (std::same_as<S, shadow_state>) std::get<detail::shadow_weight_data>(data_).wq.clear();
                return;
            }
            std::vector<float> w = values();
            if constexpr (std::same_as<S, shadow_state>)
                data_ = detail::shadow_weight_data{.w = std::move(w)};
            else
                data_ = detail::float_weight_data{.w = std::move(w)};
        }
    }

    /// The float values (float and shadow state). Packed weights have none: throws invalid_input.
    std::span<float> master() { return float_values("master()"); }
    std::span<float const> master() const { return const_cast<weight&>(*this).float_values("master()"); }
    /// Gradient of the loss with respect to the values used in the forward pass.
    std::span<float> grad() noexcept { return grad_; }
    std::span<float const> grad() const noexcept { return grad_; }

    /// Current real values, whatever the state (a copy; for checks and checkpoints).
    std::vector<float> values() const
    {
        if (std::vector<float> const* w = floats()) return *w;
        std::vector<float> out(size());
        dequantize_into(out);
        return out;
    }

    /// @brief Sets the real values, whatever the state (for checkpoints: the counterpart of values()).
    /// Float and shadow state take them exactly, and a shadow weight's cached Q(w) is dropped; the method's rule
    /// (shadow clipping) applies from the next step on, as for values set through master().
    /// Packed state re-quantizes them: the grid steps are fixed again from the policy's clipping of the new
    /// values, and every value is rounded to the nearest level (ties to even) whatever the policy's rounding,
    /// so that assigning is deterministic and values already on that grid are kept exactly.
    /// @throws invalid_input when the count differs from size(), or for NaN values into packed state; the
    /// weight is unchanged then.
    void assign(std::span<float const> v)
    {
        if (v.size() != size())
            throw invalid_input("lowbit::nn::weight::assign: expected " + std::to_string(size()) + " values, got " +
                                std::to_string(v.size()));
        if constexpr (quantized) {
            if (auto* p = packed()) {
                std::vector<float> steps = slice_steps(v);
                std::vector<std::uint8_t> codes(kernels::packed_bytes(size(), P::bits));
                encode<nearest_even_t>(v, steps, random::counter_key{.seed = 0, .step = 0, .stream = stream_}, codes);
                p->q = qtensor<P>(shape_, std::move(codes), std::move(steps));
                return;
            }
        }
        std::vector<float>& w = *floats();
        std::copy(v.begin(), v.end(), w.begin());
        if (auto* sh = std::get_if<detail::shadow_weight_data>(&data_)) sh->wq.clear();
    }

    /// The values the layer multiplies with in this forward pass. A layer with a bias may ask for the
    /// evaluation form of a policy that folds its scale into the bias (`fold_into_bias`, see
    /// folds_scale_into_bias); the layer then divides its bias by eval_output_scale().
    std::span<float const> forward_values(forward_context const& ctx, bool fold_into_bias = false)
    {
        folded_ = false;
        if (auto* sh = std::get_if<detail::shadow_weight_data>(&data_)) {
            if constexpr (fake_quantized) {
                sh->wq.resize(size());
                if constexpr (folds_scale_into_bias) {
                    // SAT's evaluation form: unscaled weights; the layer divides its bias by scale().
                    if (!ctx.training && fold_into_bias) {
                        policy_.forward_unscaled(sh->w, sh->wq);
                        folded_ = true;
                        return sh->wq;
                    }
                }
                policy_.forward(sh->w, sh->wq);
                if (ctx.training) count_shadow_changes(*sh);
                return sh->wq;
            } else if constexpr (quantized) {
                // Stochastic BinaryConnect evaluates with the real-valued weights (Courbariaux et al. 2015).
                if (!ctx.training && StochasticRounding<typename P::rounding_type>) return sh->w;
                quantize_shadow(*sh, random::counter_key{.seed = ctx.seed, .step = ctx.step, .stream = stream_});
                if (ctx.training) count_shadow_changes(*sh);
                return sh->wq;
            }
        }
        if (packed() != nullptr) {
            auto ws = lowbit::nn::detail::weight_workspace(size());
            dequantize_into(ws);
            return ws;
        }
        return *floats();
    }

    /// The same values again, for the backward pass (packed weights are dequantized again rather than
    /// kept, so that only their codes stay resident).
    std::span<float const> backward_values()
    {
        if (auto* sh = std::get_if<detail::shadow_weight_data>(&data_)) return sh->wq.empty() ? sh->w : sh->wq;
        if (packed() != nullptr) {
            auto ws = lowbit::nn::detail::weight_workspace(size());
            dequantize_into(ws);
            return ws;
        }
        return *floats();
    }

    /// @brief Float and shadow state: w <- w - s, the bare step; the training method applies its rule around it
    /// (train/: BinaryConnect clips the shadow weights after it).
    /// @throws invalid_input in packed state, which has no float values to step (step_on_grid does that).
    void subtract(std::span<float const> s)
    {
        std::span<float> const w = float_values("subtract()");
        for (std::size_t i = 0; i < w.size(); ++i) w[i] -= s[i];
    }

    /// @brief Clips float values to the range of the policy's grid (a fixed_range clipping); nothing for other
    /// clippings, float policies and packed state.
    /// BinaryConnect clips its shadow weights so that they cannot drift beyond the outermost level and stop
    /// flipping. Only a fixed bound defines a range to clip to; bounds derived from the weights themselves
    /// (max_abs, mean_abs, ...) move with them, and clipping to them would be wrong.
    void clip_to_range()
    {
        if constexpr (quantized) {
            if constexpr (std::is_same_v<typename P::clipping_type, clip::fixed_range>) {
                std::vector<float>* const w = floats();
                if (w == nullptr) return;
                float const step = levels().step_for_range(policy_.clipping.bound);
                float const lo = (static_cast<float>(levels().qmin) + levels().offset) * step;
                float const hi = (static_cast<float>(levels().qmax) + levels().offset) * step;
                for (float& v : *w) v = std::clamp(v, lo, hi);
            }
        }
    }

    /// @brief Packed state: the values Q(w) - s rounded back onto the fixed grid with the policy's rounding
    /// (stochastic: Li et al.'s SR; deterministic: R), the draws from @p key; the changed codes are counted
    /// (value_changes()). Nothing in float and shadow state and for float policies.
    void step_on_grid(std::span<float const> s, random::counter_key key)
    {
        if constexpr (quantized) {
            auto* p = packed();
            if (p == nullptr) return;
            auto ws = lowbit::nn::detail::weight_workspace(size());
            dequantize_into(ws);
            for (std::size_t i = 0; i < ws.size(); ++i) ws[i] -= s[i];
            std::span<std::uint8_t> const codes = p->q.codes();
            p->previous.assign(codes.begin(), codes.end());
            encode(ws, p->q.steps(), key, codes);
            changes_ += kernels::changed_codes(p->previous.data(), codes.data(), size(), P::bits);
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
            if (holds<shadow_state>()) {
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

    /// Bytes held for the values: 4 per value in float and shadow state; the packed codes and the steps otherwise.
    std::size_t weight_bytes() const noexcept
    {
        if (std::vector<float> const* w = floats()) return w->size() * sizeof(float);
        return codes().size() + steps().size() * sizeof(float);
    }

    /// @brief How many quantized values have changed since the weight was made: in packed state (SR, R) the
    /// codes each step changed; in shadow state (BC, SQWA, QAT) the values of Q(w) that differ from those of
    /// the previous training forward pass. Li et al.'s flips: R keeps every weight once a step is below half a
    /// grid step, and this count shows it. Float weights never count. Not part of the run state.
    std::uint64_t value_changes() const noexcept { return changes_; }

    /// The number of values held quantized (packed or shadow state of a quantizing policy), 0 otherwise: what
    /// value_changes() counts over.
    std::size_t quantized_size() const noexcept
    {
        if constexpr (quantized || fake_quantized)
            return holds<float_state>() ? 0 : size();
        else
            return 0;
    }

    /// @brief Writes the part of the weight's state that values() does not give back exactly (io::Stateful):
    /// in packed state the codes (entry `<prefix>codes`, uint8) and the fixed grid steps (`<prefix>steps`),
    /// since assign() would fix the grid afresh and round with nearest rounding. Float and shadow state write
    /// nothing: their values() are their state, and a checkpoint holds them as the model's tensors.
    void save_state(io::archive& a, std::string const& prefix) const
    {
        if (!holds<packed_state>()) return;
        a.add(prefix + "codes", {codes().size()}, std::vector<std::uint8_t>(codes().begin(), codes().end()));
        a.add(prefix + "steps", {steps().size()}, std::vector<float>(steps().begin(), steps().end()));
    }

    /// @brief Restores what save_state wrote into a weight already in the same state (the trainer binds the
    /// state before it loads), checking sizes first.
    /// @throws io::io_error naming the file for a missing entry or a size that does not fit this weight (a
    /// checkpoint of another bit width or granularity); the weight is unchanged then.
    void load_state(io::archive const& a, std::string const& prefix)
    {
        if constexpr (quantized) {
            auto* p = packed();
            if (p == nullptr) return;
            std::vector<std::size_t> const code_shape{codes().size()};
            std::vector<std::size_t> const step_shape{steps().size()};
            std::vector<std::uint8_t> codes = a.integers<std::uint8_t>(prefix + "codes", code_shape);
            auto const steps = a.values(prefix + "steps", step_shape);
            p->q = qtensor<P>(shape_, std::move(codes), std::vector<float>(steps.begin(), steps.end()));
        } else {
            (void)a;
            (void)prefix;
        }
    }

    /// The packed codes (packed state only; empty otherwise) and their steps, one per slice.
    std::span<std::uint8_t const> codes() const noexcept
    {
        if constexpr (quantized) {
            if (auto const* p = packed()) return p->q.codes();
        }
        return {};
    }
    std::span<float const> steps() const noexcept
    {
        if constexpr (quantized) {
            if (auto const* p = packed()) return p->q.steps();
        }
        return {};
    }

private:
    static std::size_t count(std::vector<std::size_t> const& s)
    {
        return std::accumulate(s.begin(), s.end(), std::size_t{1}, std::multiplies<>{});
    }

    /// The float values of float and shadow state; nullptr in packed state.
    std::vector<float>* floats() noexcept
    {
        if (auto* f = std::get_if<detail::float_weight_data>(&data_)) return &f->w;
        if (auto* sh = std::get_if<detail::shadow_weight_data>(&data_)) return &sh->w;
        return nullptr;
    }
    std::vector<float> const* floats() const noexcept { return const_cast<weight&>(*this).floats(); }

    /// The data of packed state; nullptr in the others and for policies that are no Quantizer.
    auto* packed() noexcept
    {
        if constexpr (quantized)
            return std::get_if<detail::packed_weight_data<P>>(&data_);
        else
            return static_cast<std::monostate*>(nullptr);
    }
    auto const* packed() const noexcept { return const_cast<weight&>(*this).packed(); }

    std::span<float> float_values(char const* what)
    {
        std::vector<float>* const w = floats();
        if (w == nullptr)
            throw invalid_input(std::string("lowbit::nn::weight::") + what +
                                ": the weight is held as packed codes (stochastic_rounding / rounded training); "
                                "use values() for a float copy");
        return *w;
    }

    std::size_t channels() const noexcept
    {
        if constexpr (quantized) {
            if constexpr (std::is_same_v<typename P::granularity_type, per_channel_t>)
                return shape_.empty() ? 1 : shape_[0];
        }
        return 1;
    }

    // ---- quantized helpers (only instantiated for quantizers) ----

    static constexpr level_range levels() noexcept
    {
        if constexpr (quantized)
            return P::grid_type::template levels<P::bits>();
        else
            return {0, 0, 0.0f};
    }

    /// Shadow weights -> Q(w) in wq, with the bound recomputed from the current shadow weights.
    void quantize_shadow(detail::shadow_weight_data& sh, random::counter_key key)
    {
        if constexpr (quantized) {
            std::vector<float> steps = slice_steps(sh.w);
            sh.wq.resize(size());
            quantize_dequantize(sh.w, steps, key, sh.wq);
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

    void quantize_dequantize(std::span<float const> in, std::span<float const> steps, random::counter_key key,
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
    void encode(std::span<float const> in, std::span<float const> steps, random::counter_key key,
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

    void decode(std::span<std::uint8_t const> codes, std::span<float const> steps, std::span<float> out) const
    {
        if constexpr (quantized) {
            std::vector<kernels::dequantize_params> params(steps.size());
            for (std::size_t c = 0; c < steps.size(); ++c) params[c] = kernels::make_dequantize_params(levels(), steps[c]);
            kernels::unpack_dequantize(codes.data(), size(), size() / steps.size(), params.data(), P::bits, out.data());
        }
    }

    void dequantize_into(std::span<float> out) const { decode(codes(), steps(), out); }

    /// After a training forward pass in shadow state: counts the values of Q(w) that differ from the previous
    /// training pass's, and keeps these for the next (evaluation passes, which may give another form, are not
    /// compared; nothing is counted on the first pass).
    void count_shadow_changes(detail::shadow_weight_data& sh)
    {
        if (sh.wq_previous.size() != sh.wq.size()) {
            sh.wq_previous.assign(sh.wq.begin(), sh.wq.end());
            return;
        }
        std::size_t changed = 0;
        for (std::size_t i = 0; i < sh.wq.size(); ++i) {
            changed += sh.wq[i] != sh.wq_previous[i] ? 1 : 0;
            sh.wq_previous[i] = sh.wq[i];
        }
        changes_ += changed;
    }

    std::vector<std::size_t> shape_;
    detail::weight_data<P> data_;  // the state's data (nn/weight_state.hpp)
    std::vector<float> grad_;      // gradient w.r.t. the forward values
    std::vector<float> dq_;        // scratch for finish_backward
    P policy_{};
    std::uint32_t stream_ = 0;
    bool folded_ = false;          // the last forward_values() folded the policy's scale out
    std::uint64_t changes_ = 0;    // value_changes()
};

} // namespace lowbit::nn
