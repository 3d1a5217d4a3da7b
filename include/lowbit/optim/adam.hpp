// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Adam with bias correction, L2 weight decay (Adam) and decoupled weight decay (AdamW), with the
/// semantics of PyTorch's `torch.optim.Adam` / `torch.optim.AdamW` (amsgrad off).

#include <lowbit/config.hpp>
#include <lowbit/detail/batch_loop.hpp>
#include <lowbit/io/state.hpp>
#include <lowbit/optim/optimizer_concepts.hpp>

#include <lowbit/parallel/parallel_for.hpp>

#include <xsimd/xsimd.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::optim {

/// @brief Options of lowbit::optim::adam; an aggregate, set with designated initializers:
/// `adam opt{{.lr = 1e-3f, .decoupled_weight_decay = 1e-2f}}` (AdamW).
struct adam_options {
    float lr = 1e-3f;                    ///< default learning rate; each step() call passes its own
    float beta1 = 0.9f;                  ///< decay of the first moment, in [0, 1)
    float beta2 = 0.999f;                ///< decay of the second moment, in [0, 1)
    float eps = 1e-8f;                   ///< added to sqrt(v-hat); > 0
    float weight_decay = 0.0f;           ///< L2 (Adam): lambda * w is added to the gradient, so it is rescaled too
    float decoupled_weight_decay = 0.0f; ///< AdamW: lr * lambda_d * w is added to the step, not rescaled
};

/// @brief Adam that produces steps, as PyTorch's `torch.optim.Adam` (L2 decay) and `torch.optim.AdamW`
/// (decoupled decay) compute them. The step count \f$ t \f$ is kept per slot, so a slot first used late
/// gets its own bias correction.
///
/// With \f$ \alpha \f$ = the lr of this call, \f$ \lambda \f$ = weight_decay and \f$ \lambda_d \f$ =
/// decoupled_weight_decay (both 0 when `decay` is false), for each element:
/// \f[
///   g_t = g + \lambda w, \quad
///   m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
///   v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad m_0 = v_0 = 0,
/// \f]
/// \f[
///   s_t = \frac{\alpha}{1-\beta_1^t} \cdot \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}
///         + \alpha \lambda_d w ,
/// \f]
/// and the new weight is \f$ w - s_t \f$ (Kingma & Ba 2015, Algorithm 1, with \f$ \epsilon \f$ placed as in
/// PyTorch; decoupled decay as AdamW, Loshchilov & Hutter 2019, Algorithm 2, with the schedule multiplier
/// folded into \f$ \alpha \f$). L2 decay passes through the moments and is therefore scaled per element by
/// \f$ 1/\sqrt{\hat v} \f$; decoupled decay shrinks every weight by the same factor \f$ 1 - \alpha\lambda_d \f$,
/// which is what Loshchilov & Hutter show generalizes better. Both may be set at once (each acts as above).
///
/// In lowbit's SR-ADAM the weights are then \f$ Q_s(w - s_t) \f$; in BC-ADAM \f$ w_r - s_t \f$
/// (Li et al. 2017; methods.md §1.2).
///
/// @code{.bib}
/// @inproceedings{kingma2015adam,
///   title     = {Adam: A Method for Stochastic Optimization},
///   author    = {Kingma, Diederik P. and Ba, Jimmy},
///   booktitle = {International Conference on Learning Representations (ICLR)},
///   year      = {2015}
/// }
/// @inproceedings{loshchilov2019decoupled,
///   title     = {Decoupled Weight Decay Regularization},
///   author    = {Loshchilov, Ilya and Hutter, Frank},
///   booktitle = {International Conference on Learning Representations (ICLR)},
///   year      = {2019}
/// }
/// @endcode
class adam {
public:
    /// @brief Checks the options.
    /// @throws std::invalid_argument for lr, eps or a decay that is negative or not finite, eps == 0, or a
    /// beta outside [0, 1); the message says what to set.
    explicit adam(adam_options o = {}) : options_(checked(o)) {}

    /// @brief The options this optimizer was built with.
    [[nodiscard]] adam_options const& options() const noexcept { return options_; }

    /// @brief Writes into `out` the step s such that the new weights are `w - s` (see the class comment).
    /// @param slot  which parameter tensor; its moments (sized w.size()) and step count are created at its
    ///              first call
    /// @param w     current weights
    /// @param g     gradient
    /// @param out   receives the step; may be the same span as `g` or `w` (element i is read before written)
    /// @param lr    learning rate of this step
    /// @param decay false: neither weight decay for this tensor (biases, batch norm, PACT alpha)
    /// @throws lowbit::invalid_input when the three spans differ in size, or `slot` was first used with a
    /// different size.
    void step(std::size_t slot, std::span<float const> w, std::span<float const> g, std::span<float> out,
              float lr, bool decay)
    {
        check_sizes(slot, w, g, out);
        run<false>(slot, w, g, out.data(), lr, decay);
    }

    /// @brief w <- w - s in place, with s the step that step() computes, in the same pass (optim::AppliesStep):
    /// bit for bit step() followed by subtracting its output, one pass over the weights fewer. (s ends in a
    /// division or an addition, so the subtraction cannot be contracted with it into a fused multiply-add.)
    /// @throws lowbit::invalid_input as step().
    void apply(std::size_t slot, std::span<float> w, std::span<float const> g, float lr, bool decay)
    {
        check_sizes(slot, w, g, w);
        run<true>(slot, w, g, w.data(), lr, decay);
    }

    /// @brief Drops every slot's moments and step count: the next step of each slot is step 1 again.
    void reset() noexcept { slots_.clear(); }

    /// @brief "adam": the kind a run state records (io::Stateful).
    static constexpr std::string_view name() noexcept { return "adam"; }

    /// @brief Writes the moments and step counts (io::Stateful): metadata `<prefix>kind` = adam,
    /// `<prefix>slots`, `<prefix><i>.t`; entries `<prefix><i>.m` and `<prefix><i>.v` for each slot that has
    /// taken a step. The options are not state: they come from the run's configuration.
    void save_state(io::archive& a, std::string const& prefix) const
    {
        io::put_meta(a, prefix + "kind", name());
        io::put_meta(a, prefix + "slots", slots_.size());
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            std::string const p = prefix + std::to_string(i) + ".";
            io::put_meta(a, p + "t", slots_[i].t);
            if (slots_[i].m.empty()) continue;
            a.add(p + "m", {slots_[i].m.size()}, slots_[i].m);
            a.add(p + "v", {slots_[i].v.size()}, slots_[i].v);
        }
    }

    /// @brief Restores what save_state wrote, replacing the current state only once all of it has been read.
    /// @throws io::io_error naming the file for a state of another optimizer ("the checkpoint's optimizer is
    /// sgd, this run uses adam"), a missing or mis-shaped entry, or a bad count.
    void load_state(io::archive const& a, std::string const& prefix)
    {
        if (std::string const& kind = io::meta_text(a, prefix + "kind"); kind != name())
            throw io::io_error{a.source(), "the checkpoint's optimizer is " + kind + ", this run uses adam"};
        auto const n = io::meta_slots(a, prefix + "slots");
        std::vector<slot_state> slots(n);
        for (std::size_t i = 0; i < n; ++i) {
            std::string const p = prefix + std::to_string(i) + ".";
            slots[i].t = io::meta_number<std::int64_t>(a, p + "t");
            io::archive_entry const* m = a.find(p + "m");
            if (m == nullptr) continue;  // a slot that has not taken a step yet
            std::vector<std::size_t> const shape = m->shape;
            auto const mv = a.values(p + "m", shape);
            auto const vv = a.values(p + "v", shape);
            slots[i].m.assign(mv.begin(), mv.end());
            slots[i].v.assign(vv.begin(), vv.end());
        }
        slots_ = std::move(slots);
    }

    /// @brief Number of steps taken by `slot` since construction or reset() (its t); 0 if none.
    [[nodiscard]] std::int64_t step_count(std::size_t slot) const noexcept
    {
        return slot < slots_.size() ? slots_[slot].t : 0;
    }
    /// @brief First moment m of `slot` (not bias-corrected); empty before its first step.
    [[nodiscard]] std::span<float const> first_moment(std::size_t slot) const noexcept
    {
        return slot < slots_.size() ? std::span<float const>(slots_[slot].m) : std::span<float const>();
    }
    /// @brief Second moment v of `slot` (not bias-corrected); empty before its first step.
    [[nodiscard]] std::span<float const> second_moment(std::size_t slot) const noexcept
    {
        return slot < slots_.size() ? std::span<float const>(slots_[slot].v) : std::span<float const>();
    }

private:
    /// The step s into `out`, or (Apply) w - s into `out`, which is then `w` itself.
    template <bool Apply>
    void run(std::size_t slot, std::span<float const> w, std::span<float const> g, float* out, float lr, bool decay)
    {
        std::size_t const n = w.size();
        if (n == 0)
            return;
        if (slot >= slots_.size())
            slots_.resize(slot + 1);
        slot_state& st = slots_[slot];
        if (st.m.empty()) {
            st.m.assign(n, 0.0f);
            st.v.assign(n, 0.0f);
        }
        st.t += 1;
        // Bias corrections in double, as PyTorch computes them from Python floats.
        double const t = static_cast<double>(st.t);
        double const bc1 = 1.0 - std::pow(static_cast<double>(options_.beta1), t);
        double const bc2 = 1.0 - std::pow(static_cast<double>(options_.beta2), t);
        auto const step_size = static_cast<float>(static_cast<double>(lr) / bc1);
        auto const bc2_sqrt = static_cast<float>(std::sqrt(bc2));
        float const b1 = options_.beta1;
        float const b2 = options_.beta2;
        float const l2 = decay ? options_.weight_decay : 0.0f;
        float const shrink = decay ? lr * options_.decoupled_weight_decay : 0.0f;
        float const eps = options_.eps;
        // Element-wise in batch code (detail/batch_loop.hpp), so any split over threads gives the same bits;
        // `out` may alias `w` or `g`: each batch's inputs are loaded before its outputs are stored.
        using batch = xsimd::batch<float>;
        parallel_for(n, std::size_t{1} << 15, [&](std::size_t begin, std::size_t end) {
            lowbit::detail::for_each_batch<2, 3>(
                begin, end, {w.data(), g.data()}, {st.m.data(), st.v.data(), out}, [&](auto in, auto io) {
                    batch const wi = batch::load_unaligned(in[0]);
                    batch const gi = batch::load_unaligned(in[1]) + batch(l2) * wi;
                    batch const m = batch(b1) * batch::load_unaligned(io[0]) + batch(1.0f - b1) * gi;
                    batch const v = batch(b2) * batch::load_unaligned(io[1]) + batch(1.0f - b2) * gi * gi;
                    m.store_unaligned(io[0]);
                    v.store_unaligned(io[1]);
                    batch const s =
                        batch(step_size) * m / (xsimd::sqrt(v) / batch(bc2_sqrt) + batch(eps)) + batch(shrink) * wi;
                    (Apply ? wi - s : s).store_unaligned(io[2]);
                });
        });
    }

    struct slot_state {
        std::vector<float> m;
        std::vector<float> v;
        std::int64_t t = 0;
    };

    static bool non_negative(float x) noexcept { return std::isfinite(x) && x >= 0.0f; }

    static adam_options checked(adam_options const& o)
    {
        if (!non_negative(o.lr))
            throw std::invalid_argument("lowbit::optim::adam: lr is " + std::to_string(o.lr) +
                                        "; set a finite .lr >= 0 (e.g. 1e-3f)");
        if (!(o.beta1 >= 0.0f && o.beta1 < 1.0f))
            throw std::invalid_argument("lowbit::optim::adam: beta1 is " + std::to_string(o.beta1) +
                                        "; set .beta1 in [0, 1) (default 0.9f)");
        if (!(o.beta2 >= 0.0f && o.beta2 < 1.0f))
            throw std::invalid_argument("lowbit::optim::adam: beta2 is " + std::to_string(o.beta2) +
                                        "; set .beta2 in [0, 1) (default 0.999f)");
        if (!(std::isfinite(o.eps) && o.eps > 0.0f))
            throw std::invalid_argument("lowbit::optim::adam: eps is " + std::to_string(o.eps) +
                                        "; set a finite .eps > 0 (default 1e-8f): with 0, an element whose "
                                        "gradient has always been 0 gets 0/0");
        if (!non_negative(o.weight_decay))
            throw std::invalid_argument("lowbit::optim::adam: weight_decay is " + std::to_string(o.weight_decay) +
                                        "; set a finite .weight_decay >= 0 (0 disables L2 decay)");
        if (!non_negative(o.decoupled_weight_decay))
            throw std::invalid_argument("lowbit::optim::adam: decoupled_weight_decay is " +
                                        std::to_string(o.decoupled_weight_decay) +
                                        "; set a finite .decoupled_weight_decay >= 0 (0 disables AdamW decay)");
        return o;
    }

    void check_sizes(std::size_t slot, std::span<float const> w, std::span<float const> g,
                     std::span<float> out) const
    {
        if (g.size() != w.size() || out.size() != w.size())
            throw invalid_input("lowbit::optim::adam::step: slot " + std::to_string(slot) + " has " +
                                std::to_string(w.size()) + " weights but " + std::to_string(g.size()) +
                                " gradients and " + std::to_string(out.size()) + " step elements; all three "
                                "spans must have the same size");
        if (slot < slots_.size() && !slots_[slot].m.empty() && slots_[slot].m.size() != w.size())
            throw invalid_input("lowbit::optim::adam::step: slot " + std::to_string(slot) + " was first used with " +
                                std::to_string(slots_[slot].m.size()) + " weights, now " +
                                std::to_string(w.size()) + "; a slot must name the same tensor at every step "
                                "(call reset() to start over)");
    }

    adam_options options_;
    std::vector<slot_state> slots_;
};

} // namespace lowbit::optim
