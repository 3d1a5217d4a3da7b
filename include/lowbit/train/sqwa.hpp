// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief train::sqwa<Base>: stochastic quantized weight averaging (Shin, Boo, Sung, "SQWA: Stochastic
/// Quantized Weight Averaging for Improving the Generalization Capability of Low-Precision Deep Neural
/// Networks", ICASSP 2021). Starting from a float-trained model (step 1, done by the caller or loaded from a
/// checkpoint), it runs
///  2. direct quantization: the forward weights become Q(w) with the quantizer's bound (clip::l2_optimal
///     gives the L2-optimal step per layer), the float weights stay as shadow weights;
///  3. retraining with Base's update under a cyclic learning rate (SWA-style: linear decay from high to low
///     within each cycle), capturing the *quantized* weights Q(w^{(j)}) at the end of each cycle;
///  4. averaging: \f$ \bar w = \frac1n \sum_j Q(w^{(j)}) \f$ (a running mean, in float), set as the shadow
///     weights, then BatchNorm statistics re-estimated on training batches;
///  5. re-quantization (the forward pass recomputes the step for \f$ \bar w \f$) and fine-tuning with Base at
///     a low constant rate.
/// Base must keep float shadow weights (ShadowWeightMethod): averaging captured models needs them.
///
/// A run of steps 2-5 can stop and continue bit-identically: with fit_options::checkpoint_every, the run state
/// handed to the hooks' on_checkpoint holds the current phase's trainer state (trainer::save_state) and SQWA's
/// own progress (sqwa_progress: the phase, the captures so far and their running mean), and resume() continues
/// from such a state where run() would have been.
///
/// The paper leaves the hyperparameters open; the defaults here are documented choices, not the paper's
/// (methods.md section 3.3): 5 captures, 1-epoch cycles, rates 1e-2 -> 1e-4, 2 fine-tuning epochs at 1e-4.

#include <lowbit/config.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/io/state.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/weight.hpp>
#include <lowbit/optim/schedule/constant.hpp>
#include <lowbit/optim/schedule_concepts.hpp>
#include <lowbit/random/philox.hpp>
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/method_concepts.hpp>
#include <lowbit/train/trainer.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace lowbit::train {

/// @brief Options of SQWA (steps 3-5); the cyclic schedule gives the cycle length and the rate range.
struct sqwa_options {
    std::size_t captures = 5;          ///< cycles of step 3, one captured quantized model per cycle
    std::size_t finetune_epochs = 2;   ///< step 5
    float finetune_lr = 1e-4f;         ///< step 5's constant rate
    std::size_t bn_batches = 50;       ///< training batches used to re-estimate BatchNorm statistics (step 4)
    bool keep_captures = false;        ///< keep every captured model in the result (loss-surface plots)
};

/// @brief What SQWA did.
struct sqwa_result {
    std::size_t captured = 0;          ///< quantized models averaged
    fit_result retrain;                ///< step 3
    fit_result finetune;               ///< step 5
    /// With keep_captures: the captured quantized weights, captures[j][i] for capture j and weight i (in
    /// for_each_weight order). A resumed run keeps only the captures taken after it resumed.
    std::vector<std::vector<std::vector<float>>> captures;
};

/// @brief Where SQWA's steps 3-5 stand, as a run state records it (io::Stateful): the phase ("retrain" for
/// step 3, "finetune" for step 5), the captures taken and, while retraining, their running mean per weight.
struct sqwa_progress {
    std::string phase = "retrain";
    std::size_t captured = 0;
    std::vector<std::vector<float>> mean;  ///< per weight, in for_each_weight order

    /// Metadata `<prefix>phase`, `<prefix>captured`, `<prefix>means`; entries `<prefix>mean.<i>`.
    void save_state(io::archive& a, std::string const& prefix) const
    {
        io::put_meta(a, prefix + "phase", phase);
        io::put_meta(a, prefix + "captured", captured);
        io::put_meta(a, prefix + "means", mean.size());
        for (std::size_t i = 0; i < mean.size(); ++i) a.add(prefix + "mean." + std::to_string(i), {mean[i].size()}, mean[i]);
    }

    /// @throws io::io_error naming the file when the state is not SQWA's ("the checkpoint holds no SQWA
    /// progress") or is incomplete; this object is unchanged then.
    void load_state(io::archive const& a, std::string const& prefix)
    {
        if (!a.meta().contains(prefix + "phase"))
            throw io::io_error{a.source(), "the checkpoint holds no SQWA progress (metadata '" + prefix +
                                               "phase'): it was not written by sqwa::run"};
        sqwa_progress p;
        p.phase = io::meta_text(a, prefix + "phase");
        if (p.phase != "retrain" && p.phase != "finetune")
            throw io::io_error{a.source(), "metadata '" + prefix + "phase' is '" + p.phase +
                                               "', expected 'retrain' or 'finetune'"};
        p.captured = io::meta_number<std::size_t>(a, prefix + "captured");
        auto const n = io::meta_number<std::size_t>(a, prefix + "means");
        for (std::size_t i = 0; i < n; ++i) {
            std::string const name = prefix + "mean." + std::to_string(i);
            io::archive_entry const* e = a.find(name);
            auto const v = a.values(name, e ? e->shape : std::vector<std::size_t>{});
            p.mean.emplace_back(v.begin(), v.end());
        }
        *this = std::move(p);
    }
};

namespace detail {
template <class Base>
consteval bool check_sqwa_base()
{
    static_assert(ShadowWeightMethod<Base>,
                  "lowbit::train::sqwa<Base> averages quantized models captured from float shadow weights, so Base "
                  "must be a ShadowWeightMethod such as train::binary_connect; stochastic_rounding and rounded keep "
                  "no shadow weights");
    return true;
}

template <class S>
consteval bool check_sqwa_schedule()
{
    static_assert(optim::CyclicSchedule<S>,
                  "lowbit::train::sqwa needs a cyclic learning-rate schedule (optim::CyclicSchedule, e.g. "
                  "optim::schedule::cyclic{.high = 1e-2f, .low = 1e-4f, .epochs_per_cycle = 1}): it captures a "
                  "quantized model at the end of each cycle");
    return true;
}
} // namespace detail

/// @brief SQWA over a shadow-weight method Base (binary_connect by default).
template <class Base = binary_connect>
struct sqwa {
    static_assert(detail::check_sqwa_base<Base>());

    using weight_state = typename Base::weight_state;
    static constexpr std::string_view name() noexcept { return "sqwa"; }
    /// Base's update rule.
    template <class Weight>
    static void update(Weight& w, std::span<float const> s, random::counter_key key)
    {
        Base::update(w, s, key);
    }
    /// Base's projection, where Base's rule is a subtraction and a projection (train::SubtractingMethod).
    template <class Weight>
        requires requires(Weight& w) { Base::project(w); }
    static void project(Weight& w)
    {
        Base::project(w);
    }
    template <class Policies>
    static consteval bool check()
    {
        return Base::template check<Policies>();
    }

    sqwa_options options{};

    /// @brief Steps 2-5 on a model trained in float (step 1). Each trains with its own trainer and a fresh
    /// optimizer state (copied from `optimizer`); `hooks` see both trainings (fit()'s hooks, after SQWA's own),
    /// and with fit.checkpoint_every their on_checkpoint gets the run state with SQWA's progress in it
    /// (`run/sqwa/`).
    template <nn::Layer Model, class Optimizer, class Schedule, std::size_t Rank, class... Hooks>
    sqwa_result run(Model& model, Optimizer const& optimizer, Schedule const& cyclic,
                    xt::xtensor<float, Rank> const& images, xt::xtensor<std::uint8_t, 1> const& labels,
                    fit_options fit, Hooks&&... hooks) const
    {
        return run_from(nullptr, model, optimizer, cyclic, images, labels, fit, hooks...);
    }

    /// @brief Continues a run() from a run state its hooks got (on_checkpoint), with the same arguments, so
    /// that the result is bit-identical to the run that was not interrupted.
    /// @throws io::io_error naming the file for a state that is not SQWA's or does not fit (trainer::load_state).
    template <nn::Layer Model, class Optimizer, class Schedule, std::size_t Rank, class... Hooks>
    sqwa_result resume(io::archive const& state, Model& model, Optimizer const& optimizer, Schedule const& cyclic,
                       xt::xtensor<float, Rank> const& images, xt::xtensor<std::uint8_t, 1> const& labels,
                       fit_options fit, Hooks&&... hooks) const
    {
        return run_from(&state, model, optimizer, cyclic, images, labels, fit, hooks...);
    }

    /// @brief Adds the current quantized weights Q(w) to the running means (the j-th capture).
    template <class Model>
    static void capture(Model& model, std::vector<std::vector<float>>& mean, std::size_t j,
                        std::vector<std::vector<std::vector<float>>>* kept = nullptr)
    {
        std::size_t i = 0;
        nn::forward_context const deterministic{.training = true, .seed = 0, .step = 0};
        if (kept) kept->emplace_back();
        model.for_each_weight([&](auto& w) {
            if (mean.size() <= i) mean.emplace_back(w.size(), 0.0f);
            auto const q = w.forward_values(deterministic);
            if (kept) kept->back().emplace_back(q.begin(), q.end());
            // Running mean: mean <- mean + (q - mean) / j.
            for (std::size_t k = 0; k < q.size(); ++k) mean[i][k] += (q[k] - mean[i][k]) / static_cast<float>(j);
            ++i;
        });
    }

    /// @brief Re-estimates every BatchNorm's running statistics with equal weights over training batches.
    template <class Model, std::size_t Rank>
    void recalibrate_batch_norm(Model& model, xt::xtensor<float, Rank> const& images, fit_options const& fit) const
    {
        auto each_bn = [&](auto&& f) {
            model.for_each_leaf([&](auto& layer) {
                if constexpr (requires { layer.begin_recalibration(); }) f(layer);
            });
        };
        each_bn([](auto& bn) { bn.begin_recalibration(); });
        data::batcher batches(images.shape(0), {.batch = fit.batch, .shuffle = true, .seed = fit.seed + 7,
                                                .drop_last = true});
        batches.begin_epoch(0);
        xt::xtensor<float, Rank> x;
        nn::forward_context const ctx{.training = true, .seed = fit.seed, .step = 0};
        for (std::size_t b = 0; b < std::min(options.bn_batches, batches.batches()); ++b) {
            data::gather_rows(images, batches.batch_indices(b), x);
            (void)model.forward(x, ctx);
        }
        each_bn([](auto& bn) { bn.end_recalibration(); });
    }

private:
    template <class Model, class Optimizer, class Schedule, std::size_t Rank, class... Hooks>
    sqwa_result run_from(io::archive const* state, Model& model, Optimizer const& optimizer, Schedule const& cyclic,
                         xt::xtensor<float, Rank> const& images, xt::xtensor<std::uint8_t, 1> const& labels,
                         fit_options fit, Hooks&... hooks) const
    {
        static_assert(detail::check_sqwa_schedule<Schedule>());
        if (options.captures == 0) throw invalid_input("lowbit::train::sqwa: captures must be at least 1");
        sqwa_result r;
        sqwa_progress progress;
        if (state) progress.load_state(*state, "run/sqwa/");
        // The phase trainers train with this method (weight state and update are Base's), so that their run states
        // say "sqwa" and a Base run refuses them.
        if (progress.phase == "retrain") {
            // Steps 2 and 3: shadow state (Q(w) in the forward pass), cyclic retraining with captures.
            trainer t{model, *this, Optimizer(optimizer), cyclic};
            if (state) t.load_state(*state);
            struct capture_hook {
                Model* model;
                Schedule const* schedule;
                sqwa_progress* progress;
                std::size_t wanted;
                std::vector<std::vector<std::vector<float>>>* kept;  // null unless keep_captures
                bool on_step(step_info const& s)
                {
                    double const after = static_cast<double>(s.epoch) +
                                         static_cast<double>(s.batch_in_epoch + 1) / static_cast<double>(s.batches_per_epoch);
                    double const before = after - 1.0 / static_cast<double>(s.batches_per_epoch);
                    if (!schedule->cycle_end(before, after)) return false;
                    capture(*model, progress->mean, ++progress->captured, kept);
                    return progress->captured == wanted;
                }
                void on_checkpoint(io::archive& a) const { progress->save_state(a, "run/sqwa/"); }
            } hook{&model, &cyclic, &progress, options.captures, options.keep_captures ? &r.captures : nullptr};
            fit.epochs = static_cast<std::size_t>(std::ceil(cyclic.cycle_epochs() * static_cast<double>(options.captures)));
            // A state written at the last capture has nothing left to retrain.
            if (progress.captured < options.captures) r.retrain = t.fit(images, labels, fit, hook, hooks...);
            if (progress.captured == 0 || progress.mean.empty())  // stopped early by another hook, before a cycle ended
                throw invalid_input("lowbit::train::sqwa: the retraining ended before its first cycle, so there is no "
                                    "captured model to average");
            // Step 4: the average of the captured quantized models becomes the shadow weights; BN re-estimated.
            std::size_t i = 0;
            model.for_each_weight([&](auto& w) {
                if constexpr (std::remove_reference_t<decltype(w)>::quantized || std::remove_reference_t<decltype(w)>::fake_quantized) {
                    auto m = w.master();
                    std::copy(progress.mean[i].begin(), progress.mean[i].end(), m.begin());
                }
                ++i;
            });
            recalibrate_batch_norm(model, images, fit);
            progress.phase = "finetune";
            progress.mean.clear();
        }
        r.captured = progress.captured;
        // Step 5: re-quantization happens in the forward pass; fine-tune at a low constant rate.
        if (options.finetune_epochs > 0) {
            trainer t{model, *this, Optimizer(optimizer), optim::schedule::constant{.lr = options.finetune_lr}};
            if (state && state->meta().at("run/sqwa/phase") == "finetune") t.load_state(*state);
            struct phase_hook {
                sqwa_progress const* progress;
                void on_checkpoint(io::archive& a) const { progress->save_state(a, "run/sqwa/"); }
            } hook{&progress};
            fit.epochs = options.finetune_epochs;
            fit.seed += 1;
            r.finetune = t.fit(images, labels, fit, hook, hooks...);
        }
        return r;
    }
};

} // namespace lowbit::train
