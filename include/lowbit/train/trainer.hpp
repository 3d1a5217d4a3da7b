// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief train::trainer: the training loop. It binds a model to a training method (choosing how weights
/// are stored), checks at compile time that the method, the model's weight quantizers and the optimizer
/// fit together, and runs epochs of minibatch steps with hooks.
///
/// @code
/// lowbit::train::trainer t{model, lowbit::train::binary_connect{}, lowbit::optim::adam({.lr = 1e-3f})};
/// auto const result = t.fit(images, labels, {.epochs = 5, .batch = 100, .seed = 42});
/// @endcode
///
/// Each step: forward (training mode), softmax cross-entropy, backward, then -- only if the loss and every
/// gradient are finite -- the optimizer step for every parameter through the method's update rule. A
/// non-finite input, loss or gradient throws lowbit::invalid_input before anything is updated, so the
/// model keeps its last good state. Results are bit-identical for 1 or 2 threads given a seed.

#include <lowbit/config.hpp>
#include <lowbit/data/batcher.hpp>
#include <lowbit/data/gather_rows.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/softmax_cross_entropy.hpp>
#include <lowbit/nn/weight.hpp>
#include <lowbit/optim/optimizer_concepts.hpp>
#include <lowbit/optim/schedule/constant.hpp>
#include <lowbit/optim/schedule_concepts.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/train/method_concepts.hpp>

#include <xtensor/xtensor.hpp>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace lowbit::train {

/// @brief Options of trainer::fit.
struct fit_options {
    std::size_t epochs = 1;
    std::size_t batch = 100;
    std::uint64_t seed = 0;     ///< shuffling and stochastic rounding draws
    bool shuffle = true;
    bool drop_last = true;      ///< drop a last partial batch (BatchNorm dislikes tiny batches)
};

/// @brief What a step hook sees.
struct step_info {
    std::size_t epoch = 0;      ///< 0-based
    std::size_t step = 0;       ///< global optimizer step, 0-based
    std::size_t batch_in_epoch = 0;
    std::size_t batches_per_epoch = 0;
    float loss = 0.0f;
    float learning_rate = 0.0f;
    std::size_t correct = 0;    ///< correct predictions in this batch
    std::size_t batch_size = 0;
};

/// @brief What an epoch hook sees.
struct epoch_info {
    std::size_t epoch = 0;      ///< 0-based, the epoch just finished
    float train_loss = 0.0f;    ///< mean over the epoch's batches
    float train_accuracy = 0.0f;
    double seconds = 0.0;       ///< wall time of the epoch's steps
    std::size_t images = 0;     ///< images trained on in this epoch
};

/// @brief Result of fit().
struct fit_result {
    std::size_t epochs = 0;     ///< epochs completed (all their batches ran)
    std::size_t steps = 0;
    bool stopped_early = false; ///< a hook asked to stop
    double seconds = 0.0;       ///< wall time of all training steps
    std::size_t images = 0;
    float last_loss = 0.0f;
    float last_accuracy = 0.0f;  ///< training accuracy over the last epoch
    double images_per_second() const noexcept { return seconds > 0 ? static_cast<double>(images) / seconds : 0.0; }
};

/// @brief Result of evaluate().
struct evaluation {
    float loss = 0.0f;
    float accuracy = 0.0f;
    std::size_t correct = 0;
    std::size_t count = 0;
};

namespace detail {
template <class O>
consteval bool check_trainer_optimizer()
{
    return optim::detail::check_optimizer<O>();
}

inline void require_finite(std::span<float const> v, std::string const& what)
{
    for (std::size_t i = 0; i < v.size(); ++i)
        if (!std::isfinite(v[i]))
            throw invalid_input("lowbit::train: " + what + " holds a non-finite value (" + std::to_string(v[i]) +
                                " at index " + std::to_string(i) + "); nothing was updated");
}

/// Hooks are objects with optional members `bool on_step(step_info const&)` and
/// `bool on_epoch(epoch_info const&)`; returning true stops training (ensmallen's callback convention).
template <class H>
bool call_step(H& h, step_info const& s)
{
    if constexpr (requires { { h.on_step(s) } -> std::convertible_to<bool>; })
        return h.on_step(s);
    else
        return false;
}
template <class H>
bool call_epoch(H& h, epoch_info const& e)
{
    if constexpr (requires { { h.on_epoch(e) } -> std::convertible_to<bool>; })
        return h.on_epoch(e);
    else
        return false;
}
} // namespace detail

/// @brief Trains `Model` with `Method` and `Optimizer` under `Schedule`. The model is held by reference.
template <nn::Layer Model, TrainingMethod Method, class Optimizer, optim::Schedule Schedule = optim::schedule::constant>
class trainer {
    static_assert(Method::template check<typename Model::weight_policies>());
    static_assert(detail::check_trainer_optimizer<Optimizer>());

public:
    trainer(Model& model, Method method, Optimizer optimizer, Schedule schedule = {})
        : model_(&model), method_(method), opt_(std::move(optimizer)), schedule_(schedule)
    {
        std::uint32_t stream = 1;
        model_->for_each_weight([&](auto& w) { w.store_as(Method::storage, stream++, 0); });
    }

    Model& model() noexcept { return *model_; }
    Optimizer& optimizer() noexcept { return opt_; }
    Schedule& schedule() noexcept { return schedule_; }
    std::size_t steps_done() const noexcept { return step_; }

    /// Bytes held by the model's weight values (packed codes for SR / R).
    std::size_t weight_bytes()
    {
        std::size_t b = 0;
        model_->for_each_weight([&](auto& w) { b += w.weight_bytes(); });
        return b;
    }

    /// Trains on images [N, ...] with labels [N]; hooks see each step and epoch and may stop training.
    template <std::size_t Rank, class... Hooks>
    fit_result fit(xt::xtensor<float, Rank> const& images, xt::xtensor<std::uint8_t, 1> const& labels,
                   fit_options const& o, Hooks&&... hooks)
    {
        if (images.shape(0) != labels.size())
            throw invalid_input("lowbit::train::fit: shape mismatch: " + std::to_string(images.shape(0)) +
                                " images but " + std::to_string(labels.size()) + " labels");
        if (o.batch == 0) throw invalid_input("lowbit::train::fit: batch must be positive");
        data::batcher batches(images.shape(0), {.batch = o.batch, .shuffle = o.shuffle, .seed = o.seed,
                                                .drop_last = o.drop_last});
        fit_result r;
        xt::xtensor<float, Rank> x;
        xt::xtensor<std::uint8_t, 1> y;
        for (std::size_t epoch = 0; epoch < o.epochs && !r.stopped_early; ++epoch) {
            batches.begin_epoch(epoch);
            std::size_t const nb = batches.batches();
            epoch_info ei{.epoch = epoch};
            double loss_sum = 0.0;
            std::size_t correct = 0;
            bool complete = true;
            auto const t0 = std::chrono::steady_clock::now();
            for (std::size_t b = 0; b < nb; ++b) {
                auto const idx = batches.batch_indices(b);
                data::gather_rows(images, idx, x);
                data::gather_rows(labels, idx, y);
                detail::require_finite(std::span<float const>(x.data(), x.size()),
                                       "the input batch " + std::to_string(b) + " of epoch " + std::to_string(epoch));
                double const progress = static_cast<double>(epoch) + static_cast<double>(b + 1) / static_cast<double>(nb);
                auto const s = step(x, y, o.seed, schedule_.rate(progress));
                loss_sum += s.loss;
                correct += s.correct;
                ei.images += idx.size();
                [[maybe_unused]] step_info const si{.epoch = epoch, .step = step_ - 1, .batch_in_epoch = b, .batches_per_epoch = nb,
                                   .loss = s.loss, .learning_rate = schedule_.rate(progress), .correct = s.correct,
                                   .batch_size = idx.size()};
                r.last_loss = s.loss;
                ++r.steps;
                if ((detail::call_step(hooks, si) | ... | false)) {
                    r.stopped_early = true;
                    complete = b + 1 == nb;  // a stop on the last batch still completes the epoch
                    break;
                }
            }
            ei.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            ei.train_loss = nb ? static_cast<float>(loss_sum / static_cast<double>(nb)) : 0.0f;
            ei.train_accuracy = ei.images ? static_cast<float>(correct) / static_cast<float>(ei.images) : 0.0f;
            r.seconds += ei.seconds;
            r.images += ei.images;
            r.last_accuracy = ei.train_accuracy;
            if (complete) ++r.epochs;
            if ((detail::call_epoch(hooks, ei) | ... | false)) r.stopped_early = true;
        }
        return r;
    }

    /// Loss and accuracy in evaluation mode (running BN statistics; deterministic forward weights).
    template <std::size_t Rank>
    evaluation evaluate(xt::xtensor<float, Rank> const& images, xt::xtensor<std::uint8_t, 1> const& labels,
                        std::size_t batch = 500)
    {
        if (images.shape(0) != labels.size())
            throw invalid_input("lowbit::train::evaluate: shape mismatch: " + std::to_string(images.shape(0)) +
                                " images but " + std::to_string(labels.size()) + " labels");
        data::batcher batches(images.shape(0), {.batch = batch, .shuffle = false, .seed = 0, .drop_last = false});
        batches.begin_epoch(0);
        evaluation e;
        double loss_sum = 0.0;
        xt::xtensor<float, Rank> x;
        xt::xtensor<std::uint8_t, 1> y;
        nn::forward_context const ctx{.training = false, .seed = 0, .step = static_cast<std::uint32_t>(step_)};
        for (std::size_t b = 0; b < batches.batches(); ++b) {
            auto const idx = batches.batch_indices(b);
            data::gather_rows(images, idx, x);
            data::gather_rows(labels, idx, y);
            auto const logits = model_->forward(x, ctx);
            auto const l = nn::softmax_cross_entropy(logits, std::span<std::uint8_t const>(y.data(), y.size()));
            loss_sum += static_cast<double>(l.loss) * static_cast<double>(idx.size());
            e.correct += l.correct;
            e.count += idx.size();
        }
        e.loss = e.count ? static_cast<float>(loss_sum / static_cast<double>(e.count)) : 0.0f;
        e.accuracy = e.count ? static_cast<float>(e.correct) / static_cast<float>(e.count) : 0.0f;
        return e;
    }

    /// One optimizer step on a batch at learning rate lr; returns the batch's loss result (without grad).
    template <class X>
    nn::loss_result step(X const& x, xt::xtensor<std::uint8_t, 1> const& y, std::uint64_t seed, float lr)
    {
        zero_grad();
        nn::forward_context const ctx{.training = true, .seed = seed, .step = static_cast<std::uint32_t>(step_)};
        auto const logits = model_->forward(x, ctx);
        auto l = nn::softmax_cross_entropy(logits, std::span<std::uint8_t const>(y.data(), y.size()));
        if (!std::isfinite(l.loss))
            throw invalid_input("lowbit::train: the loss is not finite at step " + std::to_string(step_) +
                                "; nothing was updated (lower the learning rate?)");
        model_->backward(l.grad);
        model_->for_each_weight([](auto& w) { w.finish_backward(); });
        check_gradients();
        update(seed, lr);
        ++step_;
        l.grad = {};
        return l;
    }

private:
    void zero_grad()
    {
        model_->for_each_weight([](auto& w) { std::fill(w.grad().begin(), w.grad().end(), 0.0f); });
        model_->for_each_parameter([](nn::parameter& p) { std::fill(p.grad.begin(), p.grad.end(), 0.0f); });
    }

    void check_gradients()
    {
        std::size_t i = 0;
        model_->for_each_weight([&](auto& w) {
            detail::require_finite(w.grad(), "the gradient of weight " + std::to_string(i++) + " at step " +
                                                 std::to_string(step_));
        });
        model_->for_each_parameter([&](nn::parameter& p) {
            detail::require_finite(p.grad, "the gradient of " + std::string(p.name) + " at step " + std::to_string(step_));
        });
    }

    void update(std::uint64_t seed, float lr)
    {
        std::size_t slot = 0;
        model_->for_each_weight([&](auto& w) {
            step_buf_.resize(w.size());
            if (w.storage() == nn::weight_storage::packed) {
                std::vector<float> const v = w.values();  // weight decay needs the current values
                opt_.step(slot++, v, w.grad(), step_buf_, lr, true);
            } else {
                opt_.step(slot++, w.master(), w.grad(), step_buf_, lr, true);
            }
            w.apply_step(step_buf_, random::counter_key{.seed = seed, .step = static_cast<std::uint32_t>(step_),
                                                        .stream = w.stream()});
        });
        model_->for_each_parameter([&](nn::parameter& p) {
            step_buf_.resize(p.value.size());
            opt_.step(slot++, p.value, p.grad, step_buf_, lr, false);
            for (std::size_t i = 0; i < p.value.size(); ++i) p.value[i] -= step_buf_[i];
        });
    }

    Model* model_;
    Method method_;
    Optimizer opt_;
    Schedule schedule_;
    std::size_t step_ = 0;
    std::vector<float> step_buf_;
};

} // namespace lowbit::train
