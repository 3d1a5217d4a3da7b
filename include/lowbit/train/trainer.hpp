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
///
/// Data-parallel training: with fit_options::group (lowbit::mpi's mpi_group), each process trains on its shards
/// of every global batch, and the sums over the batch -- gradients, BatchNorm's statistics, the loss -- are
/// added across processes in a fixed tree, so every process keeps the same model and the bits depend on the
/// number of shards only (nn/batch_shards.hpp, docs/distributed.md).
///
/// A run can stop and continue bit-identically: save_state() writes everything it needs (the model's tensors,
/// packed weights' codes, the optimizer's moments and step counts, the step, epoch and batch position, the
/// seed that keys shuffling and stochastic rounding) into an io::archive, and a freshly constructed trainer
/// of the same model, method and optimizer types continues after load_state() with the same bits as a run
/// that never stopped. The shuffle of each epoch is a function of (seed, epoch) (data::batcher) and every
/// stochastic draw of (seed, step, weight), so no generator state needs saving.
/// @code
/// // every 100 steps, hand the run state to a hook that writes it (lowbit-train: --checkpoint-every)
/// struct saver { void on_checkpoint(lowbit::io::archive& state) { lowbit::io::save_archive(path, state); } ... };
/// t.fit(images, labels, {.epochs = 5, .seed = 42, .checkpoint_every = 100}, saver{...});
/// // later, in a new process:
/// lowbit::train::trainer u{fresh_model, method, optimizer, schedule};
/// u.load_state(lowbit::io::load_archive(path));
/// u.fit(images, labels, {.epochs = 5, .seed = 42});   // continues after the saved step
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/data/batcher.hpp>
#include <lowbit/data/gather_rows.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/io/state.hpp>
#include <lowbit/nn/batch_shards.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/softmax_cross_entropy.hpp>
#include <lowbit/nn/weight.hpp>
#include <lowbit/optim/optimizer_concepts.hpp>
#include <lowbit/optim/schedule/constant.hpp>
#include <lowbit/optim/schedule_concepts.hpp>
#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/parallel/process_group.hpp>
#include <lowbit/train/checkpoint.hpp>
#include <lowbit/train/int8_gradients.hpp>
#include <lowbit/train/method_concepts.hpp>

#include <xtensor/xtensor.hpp>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
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
    /// Stop after this many steps of this call (0: no limit); the next fit() of this trainer continues there,
    /// as a trainer does after load_state().
    std::size_t stop_after = 0;
    /// Every this many optimizer steps (counted over the whole run, so a resumed run keeps the rhythm), after
    /// the step and its on_step hooks, the run state (save_state()) is handed to every hook with a member
    /// `void on_checkpoint(io::archive&)`, in the order the hooks are given: a hook may add its own state
    /// (SQWA's captures), and one writes the archive. 0: never.
    std::size_t checkpoint_every = 0;
    /// Data-parallel training: the processes that share every global batch of `batch` rows (lowbit::mpi's
    /// mpi_group, or any process_group). Each process takes its shards' rows of each batch (the shuffle is the
    /// same everywhere: a function of seed and epoch), the gradients are summed across processes before the
    /// update, so every process keeps the same weights and optimizer state. nullptr: this process trains alone.
    process_group* group = nullptr;
    /// Shards per global batch (nn/batch_shards.hpp; 0: one per process). The result depends on the shards,
    /// never on the number of processes: 1 process with shards = 2 gives the bits of 2 processes. The number of
    /// processes must divide it, with a power of two shards per process.
    std::size_t shards = 0;
    /// What the processes send each other for the gradients: 32 (floats, summed in the shard tree: the default)
    /// or 8 (train::int8_gradients: 8-bit codes with stochastic rounding and error feedback, a quarter of the
    /// bytes; every process decodes every process's codes and adds them in rank order, so all keep the same
    /// weights, but the bits depend on the number of processes, and a resumed run starts with zero residuals).
    int gradient_bits = 32;
};

/// @brief The version of the run state that trainer::save_state writes and load_state reads (metadata
/// `run/version`; docs/formats.md). A change to what a run state holds is a new version. Version 2: a quantizer
/// that learns nothing (an erased XNOR or DoReFa weight) no longer has an empty parameter, so the optimizer's
/// slots of a model with ste::any_quantizer are numbered differently from version 1's.
inline constexpr std::uint32_t run_state_version = 2;

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
    std::uint64_t flips = 0;    ///< quantized weight values this epoch's steps changed (nn::weight::value_changes)
    std::size_t flip_steps = 0; ///< the steps those were counted over (fewer when a run resumed inside the epoch)
    std::size_t quantized = 0;  ///< weight values held quantized (0 for a full-precision method)

    /// Li et al.'s flips: the mean fraction of the quantized weights that one step changed in this epoch; NaN
    /// where nothing is quantized or no step ran.
    double flip_ratio() const noexcept
    {
        if (quantized == 0 || flip_steps == 0) return std::numeric_limits<double>::quiet_NaN();
        return static_cast<double>(flips) / (static_cast<double>(quantized) * static_cast<double>(flip_steps));
    }
};

/// @brief Result of fit().
struct fit_result {
    std::size_t epochs = 0;     ///< epochs completed (all their batches ran)
    std::size_t steps = 0;
    bool stopped_early = false; ///< a hook asked to stop
    bool suspended = false;     ///< fit_options::stop_after was reached: the next fit() continues the run
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
    // Inf and NaN are the floats whose exponent bits are all set; this test on the bits vectorizes (an
    // isfinite loop with an early exit does not), and the index is searched only once something is found.
    std::uint32_t bad = 0;
    for (float const x : v) bad |= (std::bit_cast<std::uint32_t>(x) & 0x7f800000u) == 0x7f800000u ? 1u : 0u;
    if (bad == 0) return;
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
template <class H>
inline constexpr bool has_checkpoint_hook = requires(H& h, io::archive& a) { h.on_checkpoint(a); };
template <class H>
void call_checkpoint(H& h, io::archive& a)
{
    if constexpr (has_checkpoint_hook<H>) h.on_checkpoint(a);
}

/// How a weight policy quantizes, for the run state's check that a checkpoint fits the model's quantizers.
template <class W>
std::string weight_kind()
{
    using P = typename W::policy_type;
    if constexpr (W::fake_quantized)
        return "fake-quantized";
    else if constexpr (W::quantized)
        return std::to_string(P::bits) + "-bit " +
               (StochasticRounding<typename P::rounding_type> ? "stochastic" : "deterministic");
    else
        return "float";
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
        model_->for_each_weight([&](auto& w) { w.bind(typename Method::weight_state{}, stream++, 0); });
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
        if (std::size_t const n = images.shape(0); o.epochs > 0 && (o.drop_last ? n / o.batch : (n + o.batch - 1) / o.batch) == 0)
            throw invalid_input("lowbit::train::fit: " + std::to_string(n) + " images give no batch of " +
                                std::to_string(o.batch) + (n > 0 ? " (the partial batch is dropped: drop_last)" : "") +
                                "; nothing would be trained: use a smaller batch or more images");
        if (o.checkpoint_every != 0 && !(detail::has_checkpoint_hook<std::remove_reference_t<Hooks>> || ... || false))
            throw invalid_input("lowbit::train::fit: checkpoint_every is set, but no hook has "
                                "on_checkpoint(io::archive&) to write the run state");
        set_up_shards(o);
        data::batcher batches(images.shape(0), {.batch = o.batch, .shuffle = o.shuffle, .seed = o.seed,
                                                .drop_last = o.drop_last});
        run_settings const now{.seed = o.seed, .batch = o.batch, .shuffle = o.shuffle, .drop_last = o.drop_last,
                               .samples = images.shape(0)};
        if (resume_)
            check_settings(now);  // continue at pos_
        else
            pos_ = {};
        resume_ = false;
        settings_ = now;
        fit_result r;
        xt::xtensor<float, Rank> x;
        xt::xtensor<std::uint8_t, 1> y;
        while (pos_.epoch < o.epochs && !r.stopped_early) {
            std::size_t const epoch = pos_.epoch;
            batches.begin_epoch(epoch);
            std::size_t const nb = batches.batches();
            epoch_info ei{.epoch = epoch};
            std::uint64_t const changes0 = value_changes();
            std::size_t const step0 = step_;
            bool complete = true;
            auto const t0 = std::chrono::steady_clock::now();
            // pos_.batch > 0 when the run continues inside an epoch; == nb when only the epoch's end is left.
            while (pos_.batch < nb) {
                std::size_t const b = pos_.batch;
                auto const idx = batches.batch_indices(b);
                // Every process checks the whole global batch, so that all of them refuse a bad one together.
                std::string const which = "the input batch " + std::to_string(b) + " of epoch " + std::to_string(epoch);
                if (shards_on_)
                    for (std::size_t const i : idx) detail::require_finite(row_of(images, i), which);
                auto const mine = shards_on_ ? take_shards(idx) : idx;
                data::gather_rows(images, mine, x);
                data::gather_rows(labels, mine, y);
                if (!shards_on_) detail::require_finite(std::span<float const>(x.data(), x.size()), which);
                double const progress = static_cast<double>(epoch) + static_cast<double>(b + 1) / static_cast<double>(nb);
                auto const s = step(x, y, o.seed, schedule_.rate(progress));
                pos_.loss_sum += s.loss;
                pos_.correct += s.correct;
                pos_.images += idx.size();
                ++pos_.batch;
                ei.images += idx.size();
                [[maybe_unused]] step_info const si{.epoch = epoch, .step = step_ - 1, .batch_in_epoch = b, .batches_per_epoch = nb,
                                   .loss = s.loss, .learning_rate = schedule_.rate(progress), .correct = s.correct,
                                   .batch_size = idx.size()};
                r.last_loss = s.loss;
                ++r.steps;
                // In a data-parallel fit every process's hooks see the same global loss, so a hook that decides
                // from what it sees stops every process at the same step.
                bool const stop = (detail::call_step(hooks, si) | ... | false);
                // The state after this step and its hooks: a run continued from it takes the next step next.
                if (o.checkpoint_every != 0 && step_ % o.checkpoint_every == 0) {
                    io::archive state;
                    save_state(state);
                    (detail::call_checkpoint(hooks, state), ...);
                }
                if (stop) {
                    r.stopped_early = true;
                    complete = pos_.batch == nb;  // a stop on the last batch still completes the epoch
                    break;
                }
                if (o.stop_after != 0 && r.steps == o.stop_after) {
                    r.suspended = true;
                    break;
                }
            }
            ei.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            r.seconds += ei.seconds;
            r.images += ei.images;
            if (r.suspended) {  // the epoch's end (and its hooks) comes when the run continues
                resume_ = true;
                break;
            }
            ei.flips = value_changes() - changes0;
            ei.flip_steps = step_ - step0;
            model_->for_each_weight([&](auto& w) { ei.quantized += w.quantized_size(); });
            ei.train_loss = nb ? static_cast<float>(pos_.loss_sum / static_cast<double>(nb)) : 0.0f;
            ei.train_accuracy =
                pos_.images ? static_cast<float>(pos_.correct) / static_cast<float>(pos_.images) : 0.0f;
            r.last_accuracy = ei.train_accuracy;
            if (complete) {
                ++r.epochs;
                pos_ = {.epoch = epoch + 1};
            }
            if ((detail::call_epoch(hooks, ei) | ... | false)) r.stopped_early = true;
        }
        shards_on_ = false;
        return r;
    }

    /// Bytes this process sent for the sums of a data-parallel fit so far (0 without a process group).
    std::uint64_t allreduce_bytes() const noexcept { return shards_.group ? shards_.group->bytes_sent() : 0; }

    /// @brief Writes the run's full state into @p a (io::Stateful, see the file comment): the model's tensors
    /// under their checkpoint names (so that load_checkpoint and lowbit-infer read the file as a model), and
    /// under io::run_state_prefix: metadata `run/version`, `run/method`, `run/quantizers`, the position
    /// `run/trainer/*` and the fit settings that key shuffling and rounding; packed weights' codes and steps
    /// (`run/weights/<tensor>.codes|steps`); the optimizer's state (`run/optimizer/`), and the method's and the
    /// schedule's when they have any. docs/formats.md lists every name.
    /// @throws invalid_input as to_archive for a model with two tensors of one name.
    void save_state(io::archive& a)
    {
        static_assert(io::Stateful<Optimizer>,
                      "lowbit::train::trainer::save_state: the optimizer must model lowbit::io::Stateful (members "
                      "save_state(io::archive&, std::string const&) const and load_state(io::archive const&, "
                      "std::string const&)), as optim::sgd and optim::adam do");
        add_model_state(a, *model_);
        io::put_meta(a, "run/version", run_state_version);
        io::put_meta(a, "run/method", Method::name());
        io::put_meta(a, "run/quantizers", quantizer_kinds());
        io::put_meta(a, "run/trainer/step", step_);
        io::put_meta(a, "run/trainer/epoch", pos_.epoch);
        io::put_meta(a, "run/trainer/batch", pos_.batch);
        io::put_meta(a, "run/trainer/loss_sum", pos_.loss_sum);
        io::put_meta(a, "run/trainer/correct", pos_.correct);
        io::put_meta(a, "run/trainer/images", pos_.images);
        if (settings_) {
            io::put_meta(a, "run/trainer/seed", settings_->seed);
            io::put_meta(a, "run/trainer/batch_size", settings_->batch);
            io::put_meta(a, "run/trainer/shuffle", settings_->shuffle ? 1 : 0);
            io::put_meta(a, "run/trainer/drop_last", settings_->drop_last ? 1 : 0);
            io::put_meta(a, "run/trainer/samples", settings_->samples);
        }
        auto save_weight = [&](std::string const& name, auto const&, auto& target) {
            if constexpr (!detail::is_span_v<decltype(target)>) target.save_state(a, "run/weights/" + name + ".");
        };
        detail::visit_state(*model_, "", save_weight);
        opt_.save_state(a, "run/optimizer/");
        if constexpr (io::Stateful<Method>) method_.save_state(a, "run/method/");
        if constexpr (io::Stateful<Schedule>) schedule_.save_state(a, "run/schedule/");
    }

    /// @brief Restores a run state written by save_state, so that the next fit() continues after the saved
    /// step; the model, the optimizer and the position change only once everything has been checked.
    /// @throws io::io_error naming a.source() and the mismatch: a model-only checkpoint ("not a resumable
    /// checkpoint"), another run-state version, another method ("checkpoint was written by method sr, this run
    /// uses bc"), other weight quantizers, another optimizer, another architecture (a missing, unexpected or
    /// mis-shaped tensor, from from_archive); fit() later refuses other fit settings (seed, batch, dataset).
    void load_state(io::archive const& a)
    {
        auto const& file = a.source();
        auto const version = a.meta().find("run/version");
        if (version == a.meta().end())
            throw io::io_error{file, "not a resumable checkpoint: it holds a model's state only (save_checkpoint, "
                                     "lowbit-train --save-model or --save-fp); a run continues from a checkpoint "
                                     "written by trainer::save_state (lowbit-train --checkpoint-every)"};
        if (version->second != std::to_string(run_state_version))
            throw io::io_error{file, "run state version " + version->second + ", and this lowbit (" +
                                         std::to_string(LOWBIT_VERSION_MAJOR) + "." +
                                         std::to_string(LOWBIT_VERSION_MINOR) + "." +
                                         std::to_string(LOWBIT_VERSION_PATCH) + ") continues runs of version " +
                                         std::to_string(run_state_version)};
        if (std::string const& m = io::meta_text(a, "run/method"); m != Method::name())
            throw io::io_error{file, "checkpoint was written by method " + m + ", this run uses " +
                                         std::string(Method::name())};
        if (std::string const& q = io::meta_text(a, "run/quantizers"); q != quantizer_kinds())
            throw io::io_error{file, "checkpoint was written with the weight quantizers [" + q + "], this run uses [" +
                                         quantizer_kinds() + "]"};
        Optimizer opt = opt_;
        opt.load_state(a, "run/optimizer/");
        Method method = method_;
        if constexpr (io::Stateful<Method>) method.load_state(a, "run/method/");
        Schedule schedule = schedule_;
        if constexpr (io::Stateful<Schedule>) schedule.load_state(a, "run/schedule/");
        position pos{.epoch = io::meta_number<std::size_t>(a, "run/trainer/epoch"),
                     .batch = io::meta_number<std::size_t>(a, "run/trainer/batch"),
                     .loss_sum = io::meta_double(a, "run/trainer/loss_sum"),
                     .correct = io::meta_number<std::size_t>(a, "run/trainer/correct"),
                     .images = io::meta_number<std::size_t>(a, "run/trainer/images")};
        auto const step = io::meta_number<std::size_t>(a, "run/trainer/step");
        std::optional<run_settings> settings;
        if (a.meta().contains("run/trainer/seed"))
            settings = run_settings{.seed = io::meta_number<std::uint64_t>(a, "run/trainer/seed"),
                                    .batch = io::meta_number<std::size_t>(a, "run/trainer/batch_size"),
                                    .shuffle = io::meta_number<int>(a, "run/trainer/shuffle") != 0,
                                    .drop_last = io::meta_number<int>(a, "run/trainer/drop_last") != 0,
                                    .samples = io::meta_number<std::size_t>(a, "run/trainer/samples")};
        // Packed weights: their codes and steps must fit before anything changes.
        auto check_weight = [&](std::string const& name, auto const&, auto& target) {
            if constexpr (!detail::is_span_v<decltype(target)>) {
                if (!target.template holds<nn::packed_state>()) return;
                std::vector<std::size_t> const codes{target.codes().size()}, steps{target.steps().size()};
                (void)a.integers<std::uint8_t>("run/weights/" + name + ".codes", codes);
                (void)a.values("run/weights/" + name + ".steps", steps);
            }
        };
        detail::visit_state(*model_, "", check_weight);
        from_archive(*model_, a);  // checks every tensor, then sets them; packed weights get their codes below
        auto load_weight = [&](std::string const& name, auto const&, auto& target) {
            if constexpr (!detail::is_span_v<decltype(target)>) target.load_state(a, "run/weights/" + name + ".");
        };
        detail::visit_state(*model_, "", load_weight);
        opt_ = std::move(opt);
        method_ = std::move(method);
        schedule_ = std::move(schedule);
        step_ = step;
        pos_ = pos;
        settings_ = settings;
        source_ = file;
        resume_ = true;
    }

    /// The epoch and the batch within it that the next step of a continued run takes.
    std::size_t epoch() const noexcept { return pos_.epoch; }
    std::size_t batch_in_epoch() const noexcept { return pos_.batch; }

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
        nn::batch_shards const* const shards = shards_on_ ? &shards_ : nullptr;
        nn::forward_context const ctx{.training = true, .seed = seed, .step = static_cast<std::uint32_t>(step_),
                                      .shards = shards};
        auto const logits = model_->forward(x, ctx);
        std::size_t const rows = nn::global_batch_rows(shards, y.size());
        auto l = nn::softmax_cross_entropy(logits, std::span<std::uint8_t const>(y.data(), y.size()), rows);
        if (shards != nullptr && shards->group != nullptr) {
            // The global batch's loss and correct count, for the hooks and the loss check on every process.
            double both[2] = {static_cast<double>(l.loss) * static_cast<double>(y.size()),
                              static_cast<double>(l.correct)};
            shards->group->sum(std::span<double>(both));
            l.loss = static_cast<float>(both[0] / static_cast<double>(rows));
            l.correct = static_cast<std::size_t>(both[1]);
        }
        if (!std::isfinite(l.loss))
            throw invalid_input("lowbit::train: the loss is not finite at step " + std::to_string(step_) +
                                "; nothing was updated (lower the learning rate?)");
        // The model's input is the data: its gradient is not needed (no_input_gradient_t).
        nn::backward_without_input_gradient(*model_, l.grad);
        // Before finish_backward: a weight quantizer's learned parameters (LSQ's step) get their gradients there,
        // from the summed gradient, and are zero while summed here.
        if (shards != nullptr && shards->group != nullptr) sum_gradients(*shards->group, seed);
        model_->for_each_weight([](auto& w) { w.finish_backward(); });
        check_gradients();
        update(seed, lr);
        ++step_;
        l.grad = {};
        return l;
    }

private:
    /// Where a run stands: the next step is batch `batch` of epoch `epoch` (batch == batches per epoch: only
    /// the epoch's end is left), with the epoch's statistics so far.
    struct position {
        std::size_t epoch = 0;
        std::size_t batch = 0;
        double loss_sum = 0.0;
        std::size_t correct = 0;
        std::size_t images = 0;
    };
    /// The fit options that decide which samples and draws each step takes: a continued run must use the same.
    struct run_settings {
        std::uint64_t seed = 0;
        std::size_t batch = 0;
        bool shuffle = true;
        bool drop_last = true;
        std::size_t samples = 0;
    };

    void check_settings(run_settings const& now) const
    {
        if (!settings_) return;
        auto const refuse = [&](char const* what, auto saved, auto used) {
            throw io::io_error{source_, std::string("the checkpoint's run used ") + what + " " + std::to_string(saved) +
                                            ", this fit() uses " + std::to_string(used) +
                                            " (a run continues only with the seed, batch size, shuffling and data "
                                            "it was written with)"};
        };
        if (settings_->seed != now.seed) refuse("seed", settings_->seed, now.seed);
        if (settings_->batch != now.batch) refuse("batch size", settings_->batch, now.batch);
        if (settings_->samples != now.samples) refuse("a training set of size", settings_->samples, now.samples);
        if (settings_->shuffle != now.shuffle) refuse("shuffle", int{settings_->shuffle}, int{now.shuffle});
        if (settings_->drop_last != now.drop_last) refuse("drop_last", int{settings_->drop_last}, int{now.drop_last});
    }

    /// Checks fit()'s data-parallel options and prepares the shards (nn/batch_shards.hpp).
    void set_up_shards(fit_options const& o)
    {
        std::size_t const procs = o.group ? o.group->size() : 1, shards = o.shards ? o.shards : procs;
        if (shards % procs != 0 || !std::has_single_bit(shards / procs))
            throw invalid_input("lowbit::train::fit: " + std::to_string(shards) + " shards cannot be split over " +
                                std::to_string(procs) + " processes: each process needs a power of two shards "
                                "(1, 2, 4, ...); use shards = a multiple of the number of processes");
        if (o.gradient_bits != 32 && o.gradient_bits != 8)
            throw invalid_input("lowbit::train::fit: gradient_bits is " + std::to_string(o.gradient_bits) +
                                "; the processes send gradients as 32-bit floats or 8-bit codes (8 or 32)");
        if (o.gradient_bits == 8 && o.group == nullptr)
            throw invalid_input("lowbit::train::fit: gradient_bits = 8 sets what processes send each other, and this "
                                "fit has no process group (fit_options::group)");
        if (shards > o.batch)
            throw invalid_input("lowbit::train::fit: " + std::to_string(shards) + " shards of a batch of " +
                                std::to_string(o.batch) + " rows: a shard needs at least one row");
        shards_on_ = shards > 1;
        shard_count_ = shards;
        local_shards_ = shards / procs;
        first_shard_ = (o.group ? o.group->rank() : 0) * local_shards_;
        shards_.group = o.group;
        gradient_bits_ = o.gradient_bits;
    }

    /// This process's rows of a global batch; sets the shards' local bounds.
    std::span<std::size_t const> take_shards(std::span<std::size_t const> idx)
    {
        std::size_t const b = idx.size();
        if (b < shard_count_)  // a last partial batch (drop_last = false) too small to give every shard a row
            throw invalid_input("lowbit::train::fit: a batch of " + std::to_string(b) + " rows cannot be cut into " +
                                std::to_string(shard_count_) + " shards (keep drop_last = true)");
        std::size_t const r0 = nn::shard_begin(first_shard_, shard_count_, b);
        bounds_.resize(local_shards_ + 1);
        for (std::size_t l = 0; l <= local_shards_; ++l)
            bounds_[l] = nn::shard_begin(first_shard_ + l, shard_count_, b) - r0;
        shards_.bounds = bounds_;
        shards_.global_rows = b;
        return idx.subspan(r0, bounds_.back());
    }

    template <std::size_t Rank>
    static std::span<float const> row_of(xt::xtensor<float, Rank> const& images, std::size_t i)
    {
        std::size_t const row = images.shape(0) ? images.size() / images.shape(0) : 0;
        return {images.data() + i * row, row};
    }

    /// Sums every gradient across the processes in one message (weights' gradients with respect to Q(w), then
    /// the other parameters', in visiting order).
    void sum_gradients(process_group& g, std::uint64_t seed)
    {
        std::size_t n = 0;
        model_->for_each_weight([&](auto& w) { n += w.grad().size(); });
        model_->for_each_parameter([&](nn::parameter& p) { n += p.grad.size(); });
        wire_.resize(n);
        auto each = [&](auto&& f) {
            std::size_t at = 0;
            model_->for_each_weight([&](auto& w) { f(w.grad(), at); at += w.grad().size(); });
            model_->for_each_parameter([&](nn::parameter& p) { f(p.grad, at); at += p.grad.size(); });
        };
        each([&](std::span<float> v, std::size_t at) { std::copy(v.begin(), v.end(), wire_.data() + at); });
        if (gradient_bits_ == 8) {
            // Every process's 8-bit codes to every process, decoded and added in rank order.
            std::size_t const bytes = int8_gradients::wire_bytes(n);
            codes_.resize(bytes * g.size());
            mine_.resize(bytes);
            codec_.encode(wire_, {.seed = seed, .step = static_cast<std::uint32_t>(step_),
                                  .stream = gradient_stream + static_cast<std::uint32_t>(g.rank())}, mine_);
            g.gather(mine_, codes_);
            std::fill(wire_.begin(), wire_.end(), 0.0f);
            for (std::size_t r = 0; r < g.size(); ++r)
                int8_gradients::add_decoded(std::span<std::byte const>(codes_).subspan(r * bytes, bytes), wire_);
        } else {
            g.sum(std::span<float>(wire_));
        }
        each([&](std::span<float> v, std::size_t at) { std::copy_n(wire_.data() + at, v.size(), v.begin()); });
    }

    std::uint64_t value_changes()
    {
        std::uint64_t n = 0;
        model_->for_each_weight([&](auto& w) { n += w.value_changes(); });
        return n;
    }

    std::string quantizer_kinds()
    {
        std::string s;
        model_->for_each_weight([&](auto& w) {
            s += (s.empty() ? "" : ", ") + detail::weight_kind<std::remove_reference_t<decltype(w)>>();
        });
        return s;
    }

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
            if constexpr (SubtractingMethod<Method> && optim::AppliesStep<Optimizer>) {
                // w <- project(w - s) with the subtraction in the optimizer's pass (the same values).
                opt_.apply(slot++, w.master(), w.grad(), lr, true);
                Method::project(w);
                return;
            }
            step_buf_.resize(w.size());
            if (w.template holds<nn::packed_state>()) {
                std::vector<float> const v = w.values();  // weight decay needs the current values
                opt_.step(slot++, v, w.grad(), step_buf_, lr, true);
            } else {
                opt_.step(slot++, w.master(), w.grad(), step_buf_, lr, true);
            }
            Method::update(w, step_buf_, random::counter_key{.seed = seed, .step = static_cast<std::uint32_t>(step_),
                                                             .stream = w.stream()});
        });
        model_->for_each_parameter([&](nn::parameter& p) {
            if constexpr (optim::AppliesStep<Optimizer>) {
                opt_.apply(slot++, p.value, p.grad, lr, false);
            } else {
                step_buf_.resize(p.value.size());
                opt_.step(slot++, p.value, p.grad, step_buf_, lr, false);
                for (std::size_t i = 0; i < p.value.size(); ++i) p.value[i] -= step_buf_[i];
            }
        });
    }

    Model* model_;
    Method method_;
    Optimizer opt_;
    Schedule schedule_;
    std::size_t step_ = 0;
    std::vector<float> step_buf_;
    position pos_;
    std::optional<run_settings> settings_;  // of the running or last fit(), or of a loaded state
    std::filesystem::path source_;          // the file a loaded state came from (for fit()'s refusal)
    bool resume_ = false;                   // the next fit() continues at pos_
    // Data-parallel fit (fit_options::group, shards): this process's shards of the current batch.
    bool shards_on_ = false;
    std::size_t shard_count_ = 1, local_shards_ = 1, first_shard_ = 0;
    std::vector<std::size_t> bounds_;
    nn::batch_shards shards_;
    std::vector<float> wire_;               // the gradients of one step, packed for the sum across processes
    int gradient_bits_ = 32;                // fit_options::gradient_bits
    int8_gradients codec_;                  // gradient_bits 8: this process's residuals
    std::vector<std::byte> mine_, codes_;   // gradient_bits 8: this process's codes, every process's codes
    // The draws of the 8-bit gradient codes: streams above the weights' (trainer() numbers weights from 1).
    static constexpr std::uint32_t gradient_stream = 0x40000000u;
};

} // namespace lowbit::train
