// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay, with the
/// semantics of PyTorch's `torch.optim.SGD` (dampening 0).

#include <lowbit/config.hpp>
#include <lowbit/detail/batch_loop.hpp>
#include <lowbit/io/state.hpp>
#include <lowbit/optim/optimizer_concepts.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <xsimd/xsimd.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

namespace lowbit::optim {

/// @brief Options of lowbit::optim::sgd; an aggregate, set with designated initializers:
/// `sgd opt{{.lr = 0.1f, .momentum = 0.9f, .nesterov = true, .weight_decay = 4e-5f}}`.
struct sgd_options {
    float lr = 0.01f;           ///< default learning rate; each step() call passes its own (the schedule's)
    float momentum = 0.0f;      ///< heavy-ball coefficient mu >= 0; 0 keeps no state at all
    bool nesterov = false;      ///< Nesterov momentum (needs momentum > 0)
    float weight_decay = 0.0f;  ///< L2 coefficient lambda >= 0, added to the gradient when `decay` is true
};

/// @brief SGD that produces steps, as PyTorch's `torch.optim.SGD` (dampening 0) computes them.
///
/// For each element, with \f$ \lambda \f$ = weight_decay (0 when `decay` is false), \f$ \mu \f$ = momentum
/// and \f$ \alpha \f$ = the lr of this call:
/// \f[
///   g' = g + \lambda w, \qquad
///   b_t = \begin{cases} g' & t = 1 \\ \mu b_{t-1} + g' & t > 1 \end{cases}, \qquad
///   d = \begin{cases} g' + \mu b_t & \text{Nesterov} \\ b_t & \text{otherwise} \end{cases}, \qquad
///   s = \alpha d
/// \f]
/// and with \f$ \mu = 0 \f$ simply \f$ s = \alpha g' \f$. The new weight is \f$ w - s \f$; applying it
/// (and quantizing, for SR) is the training method's job. The momentum buffer \f$ b \f$ is kept per slot
/// (Sutskever et al. 2013, "On the importance of initialization and momentum in deep learning", ICML).
///
/// @code
/// lowbit::optim::sgd opt{{.lr = 0.1f, .momentum = 0.9f}};
/// std::vector<float> w(n), g(n), s(n);
/// opt.step(0, w, g, s, 0.1f, true);     // slot 0: the first layer's weights
/// for (std::size_t i = 0; i < n; ++i) w[i] -= s[i];
/// @endcode
class sgd {
public:
    /// @brief Checks the options.
    /// @throws std::invalid_argument for a negative or non-finite lr, momentum or weight decay, or Nesterov
    /// without momentum; the message says what to set.
    explicit sgd(sgd_options o = {}) : options_(checked(o)) {}

    /// @brief The options this optimizer was built with.
    [[nodiscard]] sgd_options const& options() const noexcept { return options_; }

    /// @brief Writes into `out` the step s such that the new weights are `w - s` (see the class comment).
    /// @param slot  which parameter tensor; its momentum buffer is created (sized w.size()) at its first call
    /// @param w     current weights
    /// @param g     gradient
    /// @param out   receives the step; may be the same span as `g` or `w` (element i is read before written)
    /// @param lr    learning rate of this step
    /// @param decay false: no weight decay for this tensor (biases, batch norm, PACT alpha)
    /// @throws lowbit::invalid_input when the three spans differ in size, or `slot` was first used with a
    /// different size.
    void step(std::size_t slot, std::span<float const> w, std::span<float const> g, std::span<float> out,
              float lr, bool decay)
    {
        check_sizes(slot, w, g, out);
        float const wd = decay ? options_.weight_decay : 0.0f;
        std::size_t const n = w.size();
        if (n == 0)
            return;
        // Element-wise in batch code (detail/batch_loop.hpp), so any split over threads gives the same bits;
        // `out` may alias `w` or `g`: each batch's inputs are loaded before its outputs are stored.
        using batch = xsimd::batch<float>;
        auto const gradient = [wd](auto const& in) {
            return batch::load_unaligned(in[1]) + batch(wd) * batch::load_unaligned(in[0]);
        };
        auto const each = [&](auto const& outputs, auto&& f) {
            parallel_for(n, std::size_t{1} << 15, [&](std::size_t begin, std::size_t end) {
                lowbit::detail::for_each_batch<2, std::tuple_size_v<std::remove_cvref_t<decltype(outputs)>>>(
                    begin, end, {w.data(), g.data()}, outputs, f);
            });
        };
        if (options_.momentum == 0.0f) {
            each(std::array<float*, 1>{out.data()},
                 [&](auto const& in, auto const& o) { (batch(lr) * gradient(in)).store_unaligned(o[0]); });
            return;
        }
        if (slot >= buffers_.size())
            buffers_.resize(slot + 1);
        std::vector<float>& buf = buffers_[slot];
        float const mu = options_.momentum;
        bool const first = buf.empty();  // first step of this slot: b_1 = g', not mu * 0 + g'
        if (first)
            buf.resize(n);
        bool const nesterov = options_.nesterov;
        each(std::array<float*, 2>{buf.data(), out.data()}, [&](auto const& in, auto const& o) {
            batch const gi = gradient(in);
            batch const b = first ? gi : batch(mu) * batch::load_unaligned(o[0]) + gi;
            b.store_unaligned(o[0]);
            (batch(lr) * (nesterov ? gi + batch(mu) * b : b)).store_unaligned(o[1]);
        });
    }

    /// @brief Drops every momentum buffer: the next step of each slot is a first step.
    void reset() noexcept { buffers_.clear(); }

    /// @brief "sgd": the kind a run state records (io::Stateful).
    static constexpr std::string_view name() noexcept { return "sgd"; }

    /// @brief Writes the momentum buffers (io::Stateful): metadata `<prefix>kind` = sgd and
    /// `<prefix>slots`; entry `<prefix><i>.momentum` for each slot that has one. (An empty buffer is state
    /// too: the slot's next step is a first step.)
    void save_state(io::archive& a, std::string const& prefix) const
    {
        io::put_meta(a, prefix + "kind", name());
        io::put_meta(a, prefix + "slots", buffers_.size());
        for (std::size_t i = 0; i < buffers_.size(); ++i)
            if (!buffers_[i].empty())
                a.add(prefix + std::to_string(i) + ".momentum", {buffers_[i].size()}, buffers_[i]);
    }

    /// @brief Restores what save_state wrote, replacing the current state only once all of it has been read.
    /// @throws io::io_error naming the file for a state of another optimizer ("the checkpoint's optimizer is
    /// adam, this run uses sgd") or a bad count.
    void load_state(io::archive const& a, std::string const& prefix)
    {
        if (std::string const& kind = io::meta_text(a, prefix + "kind"); kind != name())
            throw io::io_error{a.source(), "the checkpoint's optimizer is " + kind + ", this run uses sgd"};
        auto const n = io::meta_slots(a, prefix + "slots");
        std::vector<std::vector<float>> buffers(n);
        for (std::size_t i = 0; i < n; ++i) {
            std::string const name = prefix + std::to_string(i) + ".momentum";
            if (io::archive_entry const* e = a.find(name)) {
                auto const v = a.values(name, e->shape);
                buffers[i].assign(v.begin(), v.end());
            }
        }
        buffers_ = std::move(buffers);
    }

    /// @brief The momentum buffer of `slot`; empty before its first step, after reset(), or with momentum 0.
    [[nodiscard]] std::span<float const> momentum_buffer(std::size_t slot) const noexcept
    {
        return slot < buffers_.size() ? std::span<float const>(buffers_[slot]) : std::span<float const>();
    }

private:
    static bool non_negative(float x) noexcept { return std::isfinite(x) && x >= 0.0f; }

    static sgd_options checked(sgd_options const& o)
    {
        if (!non_negative(o.lr))
            throw std::invalid_argument("lowbit::optim::sgd: lr is " + std::to_string(o.lr) +
                                        "; set a finite .lr >= 0 (e.g. 0.01f)");
        if (!non_negative(o.momentum))
            throw std::invalid_argument("lowbit::optim::sgd: momentum is " + std::to_string(o.momentum) +
                                        "; set a finite .momentum >= 0 (0 for plain SGD, typically 0.9f)");
        if (!non_negative(o.weight_decay))
            throw std::invalid_argument("lowbit::optim::sgd: weight_decay is " + std::to_string(o.weight_decay) +
                                        "; set a finite .weight_decay >= 0 (0 disables it)");
        if (o.nesterov && o.momentum == 0.0f)
            throw std::invalid_argument("lowbit::optim::sgd: Nesterov momentum needs momentum > 0; "
                                        "set .momentum (e.g. 0.9f) or .nesterov = false");
        return o;
    }

    void check_sizes(std::size_t slot, std::span<float const> w, std::span<float const> g,
                     std::span<float> out) const
    {
        if (g.size() != w.size() || out.size() != w.size())
            throw invalid_input("lowbit::optim::sgd::step: slot " + std::to_string(slot) + " has " +
                                std::to_string(w.size()) + " weights but " + std::to_string(g.size()) +
                                " gradients and " + std::to_string(out.size()) + " step elements; all three "
                                "spans must have the same size");
        if (slot < buffers_.size() && !buffers_[slot].empty() && buffers_[slot].size() != w.size())
            throw invalid_input("lowbit::optim::sgd::step: slot " + std::to_string(slot) + " was first used with " +
                                std::to_string(buffers_[slot].size()) + " weights, now " +
                                std::to_string(w.size()) + "; a slot must name the same tensor at every step "
                                "(call reset() to start over)");
    }

    sgd_options options_;
    std::vector<std::vector<float>> buffers_; ///< per slot; empty = no step yet
};

} // namespace lowbit::optim
