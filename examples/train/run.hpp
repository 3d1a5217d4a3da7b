// SPDX-License-Identifier: MIT
#pragma once
// lowbit-train: the training run, generic over the model. Each model's runner (mlp.cpp, cnn.cpp) is its own
// translation unit, so the two compile in parallel.

#include "config.hpp"
#include "recipe.hpp"

#include <lowbit/data/fashion_mnist.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>
#include <lowbit/io/state.hpp>
#include <xtensor/xview.hpp>
#include <lowbit/lowbit.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/nn/summary.hpp>
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/checkpoint.hpp>
#include <lowbit/train/full_precision.hpp>
#include <lowbit/train/rounded.hpp>
#include <lowbit/train/sat.hpp>
#include <lowbit/train/sqwa.hpp>
#include <lowbit/train/stochastic_rounding.hpp>
#include <lowbit/train/trainer.hpp>

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <variant>

namespace lowbit_train {

/// The command line picks the optimizer and the schedule at run time; these two small adaptors keep one
/// trainer type per model and method instead of one per optimizer x schedule.
class any_optimizer {
public:
    explicit any_optimizer(config const& c)
    {
        if (c.optimizer == "sgd")
            opt_ = lowbit::optim::sgd({.lr = c.lr, .momentum = c.momentum, .nesterov = false, .weight_decay = 0.0f});
        else
            opt_ = lowbit::optim::adam({.lr = c.lr});
    }
    void step(std::size_t slot, std::span<float const> w, std::span<float const> g, std::span<float> s, float lr,
              bool decay)
    {
        std::visit([&](auto& o) { o.step(slot, w, g, s, lr, decay); }, opt_);
    }
    void reset()
    {
        std::visit([](auto& o) { o.reset(); }, opt_);
    }
    // The run state of the chosen optimizer (io::Stateful); the one of another kind is refused by its name.
    void save_state(lowbit::io::archive& a, std::string const& prefix) const
    {
        std::visit([&](auto const& o) { o.save_state(a, prefix); }, opt_);
    }
    void load_state(lowbit::io::archive const& a, std::string const& prefix)
    {
        std::visit([&](auto& o) { o.load_state(a, prefix); }, opt_);
    }

private:
    std::variant<lowbit::optim::adam, lowbit::optim::sgd> opt_;
};

struct any_schedule {
    std::string kind = "constant";
    float lr = 0.01f;
    double epochs = 1;
    float rate(double epoch) const
    {
        if (kind == "cosine")
            return lowbit::optim::schedule::cosine{.lr_max = lr, .lr_min = 0.0f, .epochs = epochs}.rate(epoch);
        if (kind == "step")  // x0.1 at 50 % and 75 % of training (methods.md's suggested default)
            return lowbit::optim::schedule::step_decay{.lr = lr, .gamma = 0.1f, .milestones = {epochs * 0.5, epochs * 0.75}}
                .rate(epoch);
        return lr;
    }
};

/// Progress: a bar redrawn in place on a terminal, plain lines otherwise.
class progress {
public:
    progress() : tty_(isatty(STDOUT_FILENO) != 0) {}

    bool on_step(lowbit::train::step_info const& s)
    {
        if (!tty_ || (s.batch_in_epoch % 10 != 0 && s.batch_in_epoch + 1 != s.batches_per_epoch)) return false;
        if (s.batch_in_epoch == 0) start_ = std::chrono::steady_clock::now(), images_ = 0;
        images_ += s.batch_size * (s.batch_in_epoch == 0 ? 1 : 10);
        double const secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        int const width = 30;
        int const done = static_cast<int>(width * (s.batch_in_epoch + 1) / s.batches_per_epoch);
        std::printf("\repoch %zu [%s%s] loss %.4f acc %.3f %7.0f img/s", s.epoch + 1, std::string(static_cast<std::size_t>(done), '#').c_str(),
                    std::string(static_cast<std::size_t>(width - done), '.').c_str(), s.loss,
                    static_cast<double>(s.correct) / static_cast<double>(s.batch_size), secs > 0 ? images_ / secs : 0.0);
        std::fflush(stdout);
        return false;
    }

    bool tty() const noexcept { return tty_; }

private:
    bool tty_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
    double images_ = 0;
};

/// Evaluates on the test set after each epoch, prints the epoch line and writes the CSV row.
template <class Trainer, class Images>
struct epoch_report {
    Trainer* t;
    Images const* test_x;
    xt::xtensor<std::uint8_t, 1> const* test_y;
    any_schedule const* schedule;
    std::ofstream* csv;
    bool tty;
    float last_test_acc = 0.0f;
    std::vector<double> flip_ratios{};  // per epoch; NaN where nothing is quantized

    bool on_epoch(lowbit::train::epoch_info const& e)
    {
        double const flips = e.flip_ratio();
        flip_ratios.push_back(flips);
        auto const ev = t->evaluate(*test_x, *test_y);
        last_test_acc = ev.accuracy;
        double const ips = e.seconds > 0 ? static_cast<double>(e.images) / e.seconds : 0.0;
        float const lr = schedule->rate(static_cast<double>(e.epoch + 1));
        std::printf("%sepoch %zu: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.0f img/s | lr %.3g",
                    tty ? "\r\033[K" : "", e.epoch + 1, static_cast<double>(e.train_loss),
                    static_cast<double>(e.train_accuracy), static_cast<double>(ev.loss), static_cast<double>(ev.accuracy),
                    ips, static_cast<double>(lr));
        if (!std::isnan(flips)) std::printf(" | flips %.3g per weight and step", flips);
        std::printf("\n");
        std::fflush(stdout);
        if (csv && *csv)
            *csv << e.epoch + 1 << ',' << e.train_loss << ',' << e.train_accuracy << ',' << ev.loss << ',' << ev.accuracy
                 << ',' << lr << ',' << e.seconds << ',' << ips << ',';
        if (csv && *csv && !std::isnan(flips)) *csv << flips;  // empty where nothing is quantized
        if (csv && *csv) *csv << '\n' << std::flush;
        return false;
    }
};

/// A JSON array's elements: the numbers with 6 significant digits, null for NaN.
inline std::string json_numbers(std::vector<double> const& v)
{
    std::string s;
    char buf[32];
    for (double x : v) {
        if (!s.empty()) s += ", ";
        if (std::isnan(x)) {
            s += "null";
        } else {
            std::snprintf(buf, sizeof buf, "%.6g", x);
            s += buf;
        }
    }
    return s;
}

/// Standard deviation of a range of floats (population).
template <class Range>
double stddev_of(Range const& r)
{
    double n = 0.0, mean = 0.0, m2 = 0.0;
    for (float v : r) {  // Welford
        n += 1.0;
        double const d = v - mean;
        mean += d / n;
        m2 += d * (v - mean);
    }
    return n > 0 ? std::sqrt(m2 / n) : 0.0;
}

/// SAT's diagnosis (Jin et al.): the spread of the classifier's forward weights (Q* for SAT) and of the logits
/// (in their training form), in evaluation mode, on the first 1000 test images.
struct scale_diagnostics {
    double last_weight_std = 0.0;
    double logit_std = 0.0;
};

template <class Model, class Images>
scale_diagnostics diagnose(Model& model, Images const& test_x)
{
    scale_diagnostics d;
    lowbit::nn::forward_context const eval{.training = false};
    model.for_each_weight([&](auto& w) { d.last_weight_std = stddev_of(w.forward_values(eval)); });  // the last wins
    std::size_t const n = std::min<std::size_t>(1000, test_x.shape(0));
    Images const x = xt::view(test_x, xt::range(0, n));
    auto logits = model.forward(x, eval);
    // SAT's classifier folds its scale into the bias in evaluation (logits / s); report the training form.
    float s = 1.0f;
    model.for_each_weight([&](auto& w) { s = w.eval_output_scale(); });  // the last wins
    logits *= s;
    d.logit_std = stddev_of(logits);
    return d;
}

/// The loss surface of SQWA in the quantized weight domain (the paper's picture): the test loss on the plane
/// through the first three captured models, at a grid of points, written as CSV rows "a,b,loss" followed by
/// rows "#name,a,b" for the captures, their average (SQWA's step 4) and the final model. Each point's loss
/// uses the forward pass Q(w) and BatchNorm in training mode (statistics of each 500-image test batch), so
/// no point needs its own BatchNorm re-estimation; the classifier is evaluated on the first 2000 test images.
/// Runs last: it leaves the model's weights and BatchNorm statistics changed.
template <class Model, class Images>
void write_surface(std::string const& path, std::size_t grid, Model& model,
                   std::vector<std::vector<std::vector<float>>> const& captures, Images const& test_x,
                   xt::xtensor<std::uint8_t, 1> const& test_y)
{
    if (captures.size() < 3) throw std::runtime_error("--surface needs at least 3 captures (--captures 3)");
    auto flat = [](std::vector<std::vector<float>> const& layers) {
        std::vector<double> v;
        for (auto const& l : layers) v.insert(v.end(), l.begin(), l.end());
        return v;
    };
    std::vector<double> const c1 = flat(captures[0]);
    std::size_t const n = c1.size();
    auto sub = [&](std::vector<double> const& a) { std::vector<double> d(n); for (std::size_t i = 0; i < n; ++i) d[i] = a[i] - c1[i]; return d; };
    auto dot = [&](std::vector<double> const& a, std::vector<double> const& b) { double s = 0; for (std::size_t i = 0; i < n; ++i) s += a[i] * b[i]; return s; };
    std::vector<double> e1 = sub(flat(captures[1])), e2 = sub(flat(captures[2]));
    double const n1 = std::sqrt(dot(e1, e1));
    for (double& v : e1) v /= n1;
    double const p = dot(e2, e1);
    for (std::size_t i = 0; i < n; ++i) e2[i] -= p * e1[i];
    double const n2 = std::sqrt(dot(e2, e2));
    for (double& v : e2) v /= n2;
    auto coords = [&](std::vector<double> const& w) { auto const d = sub(w); return std::pair{dot(d, e1), dot(d, e2)}; };
    // Marked points: the captures, their average, the final (fine-tuned, re-quantized) model.
    std::vector<std::pair<std::string, std::pair<double, double>>> marks;
    std::vector<double> mean(n, 0.0);
    for (std::size_t j = 0; j < captures.size(); ++j) {
        auto const w = flat(captures[j]);
        for (std::size_t i = 0; i < n; ++i) mean[i] += w[i] / static_cast<double>(captures.size());
        marks.push_back({"capture" + std::to_string(j + 1), coords(w)});
    }
    marks.push_back({"average", coords(mean)});
    std::vector<std::vector<float>> final_q;
    model.for_each_weight([&](auto& w) { auto const q = w.forward_values({.training = false}); final_q.emplace_back(q.begin(), q.end()); });
    marks.push_back({"sqwa_final", coords(flat(final_q))});
    double lo_a = 0, hi_a = 0, lo_b = 0, hi_b = 0;
    for (auto const& [name, ab] : marks) {
        lo_a = std::min(lo_a, ab.first), hi_a = std::max(hi_a, ab.first);
        lo_b = std::min(lo_b, ab.second), hi_b = std::max(hi_b, ab.second);
    }
    double const ma = 0.3 * (hi_a - lo_a), mb = 0.3 * (hi_b - lo_b);
    lo_a -= ma, hi_a += ma, lo_b -= mb, hi_b += mb;
    std::size_t const m = std::min<std::size_t>(2000, test_x.shape(0));
    std::ofstream out(path);
    if (!out) throw std::runtime_error("cannot write the surface file " + path);
    out << "a,b,loss\n";
    for (std::size_t ia = 0; ia < grid; ++ia) {
        for (std::size_t ib = 0; ib < grid; ++ib) {
            double const a = lo_a + (hi_a - lo_a) * static_cast<double>(ia) / static_cast<double>(grid - 1);
            double const b = lo_b + (hi_b - lo_b) * static_cast<double>(ib) / static_cast<double>(grid - 1);
            std::size_t off = 0;
            model.for_each_weight([&](auto& w) {
                auto dst = w.master();
                for (std::size_t i = 0; i < dst.size(); ++i, ++off)
                    dst[i] = static_cast<float>(c1[off] + a * e1[off] + b * e2[off]);
            });
            double loss = 0.0;
            for (std::size_t s0 = 0; s0 < m; s0 += 500) {
                std::size_t const s1 = std::min(m, s0 + 500);
                Images const x = xt::view(test_x, xt::range(s0, s1));
                auto const logits = model.forward(x, {.training = true});
                loss += lowbit::nn::softmax_cross_entropy(logits, std::span(test_y.data() + s0, s1 - s0)).loss *
                        static_cast<double>(s1 - s0);
            }
            out << a << ',' << b << ',' << loss / static_cast<double>(m) << '\n';
        }
    }
    for (auto const& [name, ab] : marks) out << '#' << name << ',' << ab.first << ',' << ab.second << '\n';
}

/// The options that decide a run's bits besides the model's (its metadata), as a checkpoint of --checkpoint-every
/// records them (`run/cli/<option>`): --resume continues a run only with the same. (--threads may differ:
/// results are the same for any thread count; so may --checkpoint-every.)
inline lowbit::train::checkpoint_meta run_options(config const& c)
{
    auto num = [](auto v) {
        char buf[64];
        auto const r = std::to_chars(buf, buf + sizeof buf, v);
        return std::string(buf, r.ptr);
    };
    lowbit::train::checkpoint_meta m{
        {"optimizer", c.optimizer},          {"lr", num(c.lr)},
        {"momentum", num(c.momentum)},       {"schedule", c.schedule},
        {"batch", num(c.batch)},             {"epochs", num(c.epochs)},
        {"seed", num(c.seed)},               {"train_limit", num(c.train_limit)},
        {"rounding", c.rounding},            {"data", c.data},
        {"fp_epochs", num(c.fp_epochs)},     {"captures", num(c.captures)},
        {"cycle_epochs", num(c.cycle_epochs)}, {"cycle_high", num(c.cycle_high)},
        {"cycle_low", num(c.cycle_low)},     {"finetune_epochs", num(c.finetune_epochs)},
        {"finetune_lr", num(c.finetune_lr)}, {"rescale_hidden", c.rescale_hidden ? "1" : "0"},
        {"pact_alpha", num(c.pact_alpha)},   {"kernels", c.kernels}};
    lowbit::train::checkpoint_meta out;
    for (auto const& [k, v] : m) out.emplace("run/cli/" + k, v);
    return out;
}

/// Refuses a checkpoint that --resume cannot continue with these options, naming the first option that differs
/// ("the checkpoint was written with --method sr, this run uses --method bc").
inline void check_resumable(lowbit::io::archive const& a, lowbit::train::checkpoint_meta const& want)
{
    auto const version = a.meta().find("run/version");
    if (version == a.meta().end() || !a.meta().contains("run/cli/stage"))
        throw lowbit::io::io_error{a.source(), "not a checkpoint of lowbit-train --checkpoint-every: it holds a model's "
                                               "state only (--save-model, --save-fp); --resume continues from a file "
                                               "of --checkpoint-dir"};
    if (version->second != std::to_string(lowbit::train::run_state_version))
        throw lowbit::io::io_error{a.source(), "run state version " + version->second + ", and this lowbit-train "
                                               "continues runs of version " +
                                                   std::to_string(lowbit::train::run_state_version)};
    auto const option = [](std::string key) {
        if (key.starts_with("run/cli/")) key = key.substr(8);
        std::replace(key.begin(), key.end(), '_', '-');
        return "--" + key;
    };
    auto const shown = [](std::string const& v) { return v.empty() ? std::string("(not given)") : v; };
    auto const check = [&](std::string const& key, std::string const& value) {
        auto const it = a.meta().find(key);
        if (it == a.meta().end())
            throw lowbit::io::io_error{a.source(), "the checkpoint does not record " + option(key) +
                                                   " (was it written by another lowbit-train?)"};
        if (it->second != value)
            throw lowbit::io::io_error{a.source(), "the checkpoint was written with " + option(key) + " " +
                                                   shown(it->second) + ", this run uses " + option(key) + " " +
                                                   shown(value)};
    };
    for (char const* key : {"model", "hidden", "method"}) check(key, want.at(key));  // the likeliest mix-ups first
    for (auto const& [key, value] : want) check(key, value);
}

/// Whether this process prints the report and writes files: rank 0 of a data-parallel run (all processes
/// hold the same model), or the only process.
inline bool reports(config const& c) noexcept { return c.group == nullptr || c.group->rank() == 0; }

/// Writes the run state handed to on_checkpoint (trainer::fit with checkpoint_every) as the next file of
/// --checkpoint-dir, ckpt-000001.lbck, ckpt-000002.lbck, ..., each through the archive's temporary file and
/// rename, so that a run killed at any moment leaves only complete checkpoints (and perhaps a stray temporary
/// file, removed when a run starts). The number continues in a resumed run, so that it writes the same files
/// as the run that was not interrupted.
class checkpoint_writer {
public:
    checkpoint_writer(config const& c, lowbit::train::checkpoint_meta meta, std::size_t written)
        : dir_(c.checkpoint_dir), meta_(std::move(meta)), written_(written)
    {
        // LOWBIT_TRAIN_TEST_HOLD_CHECKPOINT=k (tests only): the k-th checkpoint this process writes stops after
        // its temporary file is complete and before the rename, until the process is killed -- the window
        // in which a crash must leave the directory readable.
        if (char const* k = std::getenv("LOWBIT_TRAIN_TEST_HOLD_CHECKPOINT")) hold_at_ = std::strtoull(k, nullptr, 10);
        writes_ = reports(c);  // data-parallel: every process holds the same state; rank 0 writes it
        if (dir_.empty() || !writes_) return;
        std::filesystem::create_directories(dir_);
        std::error_code ec;
        for (auto const& e : std::filesystem::directory_iterator(dir_, ec)) {
            std::string const name = e.path().filename().string();
            if (name.starts_with("ckpt-") && name.find(".lbck.tmp-") != std::string::npos) {
                std::filesystem::remove(e.path(), ec);
                std::printf("removed %s, the temporary file of a checkpoint that was not completed\n", name.c_str());
            }
        }
    }

    std::string stage = "train";  // train; with --method sqwa: fp (step 1), then sqwa

    void on_checkpoint(lowbit::io::archive& a)
    {
        if (!writes_) return;
        ++written_;
        ++this_process_;
        for (auto const& [k, v] : meta_) a.meta()[k] = v;
        a.meta()["run/cli/stage"] = stage;
        lowbit::io::put_meta(a, "run/cli/checkpoints", written_);
        char name[40];
        std::snprintf(name, sizeof name, "ckpt-%06zu.lbck", written_);
        std::filesystem::path const file = dir_ / name;
        std::function<void(std::filesystem::path const&)> hold;
        if (hold_at_ != 0 && this_process_ == hold_at_)
            hold = [](std::filesystem::path const& tmp) {
                std::fprintf(stderr, "lowbit-train: test: holding %s before its rename\n", tmp.string().c_str());
                std::fflush(stderr);
                for (;;) pause();
            };
        lowbit::io::save_archive(file, a, hold);
        std::printf("checkpoint %s: stage %s, step %s\n", file.string().c_str(), stage.c_str(),
                    a.meta().at("run/trainer/step").c_str());
        std::fflush(stdout);
    }

private:
    bool writes_ = true;
    std::filesystem::path dir_;
    lowbit::train::checkpoint_meta meta_;
    std::size_t written_ = 0;       // checkpoints of the run so far (also those before a resume)
    std::size_t this_process_ = 0;  // written by this process
    std::size_t hold_at_ = 0;
};

template <class Model, class Method, class Images>
int train_and_report(config const& c, Model& model, Method method, Images const& train_x,
                     xt::xtensor<std::uint8_t, 1> const& train_y, Images const& test_x,
                     xt::xtensor<std::uint8_t, 1> const& test_y, std::string const& rounding)
{
    lowbit::set_num_threads(c.threads);
    // Loading requires the architecture keys; saving also records the recipe (lowbit-infer and people read it).
    lowbit::train::checkpoint_meta const meta{{"model", c.model}, {"hidden", std::to_string(c.hidden)}};
    lowbit::train::checkpoint_meta saved = meta;
    saved.insert({{"method", c.method}, {"bits", std::to_string(c.bits)}, {"act_bits", std::to_string(c.act_bits)},
                  {"first_last_bits", std::to_string(c.first_last_bits)}, {"quantizer", c.quantizer},
                  {"head", c.head.empty() ? (uses_recipe(c) || c.act_bits == 1 ? "bias" : "bn") : c.head},
                  {"rounding", rounding},
                  {"recipe", uses_recipe(c) ? "1" : "0"},  // lowbit::ste recipe, or Li et al.'s grid
                  {"rescale_hidden", c.rescale_hidden ? "1" : "0"}});
    // A checkpoint of --checkpoint-every also records the options that decide the run (run/cli/*).
    lowbit::train::checkpoint_meta run_meta = saved;
    run_meta.merge(run_options(c));
    std::optional<lowbit::io::archive> state;  // --resume: the run state to continue from
    std::string stage;
    if (!c.resume.empty()) {
        state = lowbit::io::load_archive(c.resume);
        check_resumable(*state, run_meta);
        stage = state->meta().at("run/cli/stage");
        bool const sqwa = std::is_same_v<Method, lowbit::train::sqwa<lowbit::train::binary_connect>>;
        if (sqwa ? stage != "fp" && stage != "sqwa" : stage != "train")
            throw lowbit::io::io_error{state->source(), "metadata 'run/cli/stage' is '" + stage + "', not a stage of "
                                                        "--method " + c.method};
        std::printf("resuming from %s: stage %s, step %s\n", c.resume.c_str(), stage.c_str(),
                    state->meta().at("run/trainer/step").c_str());
    } else if (!c.load_fp.empty()) {
        (void)lowbit::train::load_checkpoint(c.load_fp, model, meta);  // before the trainer converts
    }
    checkpoint_writer writer(c, run_meta, state ? lowbit::io::meta_number<std::size_t>(*state, "run/cli/checkpoints") : 0);
    any_schedule const sched{.kind = c.schedule, .lr = c.lr, .epochs = static_cast<double>(c.epochs)};
    lowbit::train::trainer t{model, method, any_optimizer(c), sched};
    std::ofstream csv;
    if (!c.log.empty() && reports(c)) {
        csv.open(c.log);
        if (!csv) throw std::runtime_error("cannot write the log file " + c.log);
        csv << "epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds,train_images_per_s,flip_ratio\n";
    }
    progress bar;
    epoch_report<decltype(t), Images> report{&t, &test_x, &test_y, &sched, csv.is_open() ? &csv : nullptr, bar.tty()};
    lowbit::train::fit_result r;
    std::vector<std::vector<std::vector<float>>> captures;  // SQWA with --surface
    if constexpr (std::is_same_v<Method, lowbit::train::sqwa<lowbit::train::binary_connect>>) {
        // Step 1 with the float method, then SQWA's steps 2-5; the report shows the final model.
        if (state ? stage == "fp" : c.load_fp.empty()) {  // step 1, unless its result was loaded (or is resumed past)
            any_schedule const fp_sched{.kind = c.schedule, .lr = c.lr, .epochs = static_cast<double>(c.fp_epochs)};
            lowbit::train::trainer fp{model, lowbit::train::full_precision{}, any_optimizer(c), fp_sched};
            if (state) fp.load_state(*state);
            writer.stage = "fp";
            r = fp.fit(train_x, train_y,
                       {.epochs = c.fp_epochs, .batch = c.batch, .seed = c.seed, .checkpoint_every = c.checkpoint_every,
                        .group = c.group, .shards = c.shards, .gradient_bits = c.gradient_bits},
                       bar, writer);
            if (!c.save_fp.empty() && reports(c)) lowbit::train::save_checkpoint(c.save_fp, model, saved);
        }
        method.options = {.captures = c.captures, .finetune_epochs = c.finetune_epochs, .finetune_lr = c.finetune_lr,
                          .keep_captures = !c.surface.empty()};
        lowbit::optim::schedule::cyclic const cyclic{.high = c.cycle_high, .low = c.cycle_low,
                                                     .epochs_per_cycle = c.cycle_epochs};
        lowbit::train::fit_options const sqwa_fit{.batch = c.batch, .seed = c.seed, .checkpoint_every = c.checkpoint_every,
                                                  .group = c.group, .shards = c.shards,
                                                  .gradient_bits = c.gradient_bits};
        writer.stage = "sqwa";
        auto s = state && stage == "sqwa"
                     ? method.resume(*state, model, any_optimizer(c), cyclic, train_x, train_y, sqwa_fit, writer)
                     : method.run(model, any_optimizer(c), cyclic, train_x, train_y, sqwa_fit, writer);
        captures = std::move(s.captures);
        r.epochs += s.retrain.epochs + s.finetune.epochs;
        r.steps += s.retrain.steps + s.finetune.steps;
        r.images += s.retrain.images + s.finetune.images;
        r.seconds += s.retrain.seconds + s.finetune.seconds;
        any_schedule const finetune{.kind = "constant", .lr = c.finetune_lr};
        report.schedule = &finetune;
        (void)report.on_epoch({.epoch = r.epochs - 1, .train_loss = s.finetune.last_loss,
                               .train_accuracy = s.finetune.last_accuracy, .seconds = r.seconds, .images = r.images});
    } else {
        std::size_t done_before = 0;  // epochs completed before --resume
        if (state) {
            t.load_state(*state);
            done_before = t.epoch();
        }
        r = t.fit(train_x, train_y,
                  {.epochs = c.epochs, .batch = c.batch, .seed = c.seed, .checkpoint_every = c.checkpoint_every,
                   .group = c.group, .shards = c.shards, .gradient_bits = c.gradient_bits},
                  bar, report, writer);
        r.epochs += done_before;
        if (!c.save_fp.empty() && reports(c)) lowbit::train::save_checkpoint(c.save_fp, model, saved);  // --method fp
    }
    if (!c.save_model.empty() && reports(c)) lowbit::train::save_checkpoint(c.save_model, model, saved);
    auto const diag = diagnose(model, test_x);
    if constexpr (std::is_same_v<Method, lowbit::train::sqwa<lowbit::train::binary_connect>>) {
        if (!c.surface.empty() && reports(c)) write_surface(c.surface, c.surface_grid, model, captures, test_x, test_y);
    }
    bool const ste_recipe = uses_recipe(c) && c.method != "fp";
    // Data-parallel: the processes, and the bytes this process sent for the sums (gradients, BatchNorm's
    // statistics, the loss) over the whole run.
    std::size_t const ranks = c.group ? c.group->size() : 1;
    std::uint64_t const wire = c.group ? c.group->bytes_sent() : 0;
    std::printf("{\"model\": \"%s\", \"method\": \"%s\", \"bits\": %d, \"act_bits\": %d, \"quantizer\": \"%s\", "
                "\"first_last_bits\": %d, \"rounding\": \"%s\", \"optimizer\": \"%s\", "
                "\"lr\": %g, \"batch\": %zu, \"epochs\": %zu, \"seed\": %llu, \"threads\": %u, \"kernels\": \"%s\", "
                "\"test_acc\": %.4f, "
                "\"last_weight_std\": %.5g, \"logit_std\": %.5g, "
                "\"train_images_per_s\": %.1f, \"weight_bytes\": %zu, \"flip_ratio\": [%s], \"steps\": %zu, \"ranks\": %zu, "
                "\"shards\": %zu, \"gradient_bits\": %d, \"allreduce_bytes\": %llu, \"allreduce_bytes_per_step\": %.0f, "
                "\"allreduce_seconds\": %.4g}\n",
                c.model.c_str(), c.method.c_str(), c.method == "fp" ? 32 : c.bits,
                ste_recipe || c.act_bits == 1 ? c.act_bits : 32,
                (ste_recipe ? quantizer_family(c)
                            : std::string(c.method == "sqwa" ? "l2_optimal" : (c.method == "fp" ? "none" : "fixed_range")))
                    .c_str(),
                ste_recipe ? (c.first_last_bits == 0 ? c.bits : c.first_last_bits) : (c.method == "fp" ? 32 : c.bits),
                rounding.c_str(), c.optimizer.c_str(),
                static_cast<double>(c.lr), c.batch, r.epochs, static_cast<unsigned long long>(c.seed), c.threads,
                c.kernels.c_str(), static_cast<double>(report.last_test_acc), diag.last_weight_std, diag.logit_std,
                r.images_per_second(), t.weight_bytes(), json_numbers(report.flip_ratios).c_str(), r.steps, ranks,
                c.shards != 0 ? c.shards : ranks, c.gradient_bits, static_cast<unsigned long long>(wire),
                r.steps ? static_cast<double>(wire) / static_cast<double>(r.steps) : 0.0,
                c.group ? c.group->sum_seconds() : 0.0);
    return 0;
}


/// The policies of a model: weights (hidden, first, last layer), activations and the classifier head.
template <class W, class First, class Last, class Act = lowbit::nn::float_activations_t,
          class Head = lowbit::nn::batch_norm_head_t>
struct model_policies {
    W w;
    First first;
    Last last;
    Act act{};
    Head head{};
};

template <class W>
model_policies<W, W, W> uniform_policies(W w)
{
    return {w, w, w};
}

/// Calls f(policies, method, rounding name) with the types the configuration names.
template <class F>
int dispatch(config const& c, F&& f)
{
    using namespace lowbit;
    if (uses_recipe(c)) {  // lowbit::ste fake quantizers, type-erased (recipe.hpp); bias head, as PACT and SAT
        recipe r = make_recipe(c);
        if (c.method == "sat")
            return f(model_policies<ste::any_quantizer, ste::any_quantizer, ste::sat_rescale<ste::any_quantizer>,
                                    ste::any_quantizer, nn::bias_head_t>{
                         r.weights, r.first, ste::sat_rescale<ste::any_quantizer>(r.last), r.acts},
                     train::sat<>{}, "nearest");
        if (c.act_bits == 1)  // signed binary activations replace the ReLU, so the type must say so (bc only)
            return f(model_policies<ste::any_quantizer, ste::any_quantizer, ste::any_quantizer, ste::sign_activation,
                                    nn::bias_head_t>{r.weights, r.first, r.last},
                     train::binary_connect{}, "nearest");
        model_policies<ste::any_quantizer, ste::any_quantizer, ste::any_quantizer, ste::any_quantizer, nn::bias_head_t> p{
            r.weights, r.first, r.last, r.acts};
        if (c.method == "sqwa") return f(p, train::sqwa<train::binary_connect>{}, "nearest");
        // fp with the bias head: identity quantizers, so binary_connect trains the float weights exactly.
        return f(p, train::binary_connect{}, c.method == "fp" ? "none" : "nearest");
    }
    if (c.method == "fp") return f(uniform_policies(nn::float_weights), train::full_precision{}, "none");
    bool const stochastic = c.rounding.empty() ? c.method == "sr" : c.rounding == "stochastic";
    auto with_bits = [&]<class Rounding>(Rounding, auto method) {
        char const* rname = std::is_same_v<Rounding, stochastic_t> ? "stochastic" : "nearest";
        switch (c.bits) {
        case 1: return f(uniform_policies(cli_quantizer<1, Rounding>{.clipping = {.bound = 1.0f}}), method, rname);
        case 2: return f(uniform_policies(cli_quantizer<2, Rounding>{.clipping = {.bound = 1.0f}}), method, rname);
        case 4: return f(uniform_policies(cli_quantizer<4, Rounding>{.clipping = {.bound = 1.0f}}), method, rname);
        default: return f(uniform_policies(cli_quantizer<8, Rounding>{.clipping = {.bound = 1.0f}}), method, rname);
        }
    };
    if (c.method == "sqwa") {  // SQWA's quantizer: the L2-optimal step on the symmetric grid (ternary at 2 bits)
        auto const m = train::sqwa<train::binary_connect>{};
        switch (c.bits) {
        case 1: return f(uniform_policies(quantizer<1, nearest_even_t, clip::l2_optimal>{}), m, "nearest");
        case 2: return f(uniform_policies(quantizer<2, nearest_even_t, clip::l2_optimal>{}), m, "nearest");
        case 4: return f(uniform_policies(quantizer<4, nearest_even_t, clip::l2_optimal>{}), m, "nearest");
        default: return f(uniform_policies(quantizer<8, nearest_even_t, clip::l2_optimal>{}), m, "nearest");
        }
    }
    if (c.act_bits == 1) {
        // Sign activations replace the ReLU, with the bias head: the model deploys (lowbit-infer). 1 or 2 bits.
        auto with_signs = [&]<class Rounding>(Rounding, auto method) {
            char const* rname = std::is_same_v<Rounding, stochastic_t> ? "stochastic" : "nearest";
            auto const signs = [&]<int B>(std::integral_constant<int, B>) {
                cli_quantizer<B, Rounding> const q{.clipping = {.bound = 1.0f}};
                return f(model_policies<cli_quantizer<B, Rounding>, cli_quantizer<B, Rounding>, cli_quantizer<B, Rounding>,
                                        ste::sign_activation, nn::bias_head_t>{q, q, q},
                         method, rname);
            };
            return c.bits == 1 ? signs(std::integral_constant<int, 1>{}) : signs(std::integral_constant<int, 2>{});
        };
        if (c.method == "sr") return with_signs(stochastic_t{}, train::stochastic_rounding{});
        if (c.method == "r") return with_signs(nearest_even_t{}, train::rounded{});
        return stochastic ? with_signs(stochastic_t{}, train::binary_connect{})
                          : with_signs(nearest_even_t{}, train::binary_connect{});
    }
    if (c.method == "sr") return with_bits(stochastic_t{}, train::stochastic_rounding{});
    if (c.method == "r") return with_bits(nearest_even_t{}, train::rounded{});
    return stochastic ? with_bits(stochastic_t{}, train::binary_connect{})
                      : with_bits(nearest_even_t{}, train::binary_connect{});
}

/// --summary: the summary of the model the options describe, as a table; nothing is read or trained.
template <class Model>
int print_summary(config const& c, Model& model, std::vector<std::size_t> input_shape)
{
    std::printf("lowbit-train --model %s --method %s: %s", c.model.c_str(), c.method.c_str(),
                lowbit::summary(model, std::move(input_shape)).table().c_str());
    return 0;
}

struct dataset_pair {
    lowbit::data::labelled_images train, test;
};

inline dataset_pair load(config const& c)
{
    dataset_pair d{lowbit::data::load_fashion_mnist(lowbit::data::split::train, c.data),
                   lowbit::data::load_fashion_mnist(lowbit::data::split::test, c.data)};
    // Standardise with the training set's mean and deviation, as the PyTorch peer does.
    double const mean = xt::mean(d.train.images)();
    double const sd = xt::stddev(d.train.images)();
    for (auto* x : {&d.train.images, &d.test.images}) *x = (*x - static_cast<float>(mean)) / static_cast<float>(sd);
    if (c.train_limit != 0 && c.train_limit < d.train.images.shape(0)) {
        d.train.images = xt::view(d.train.images, xt::range(0, c.train_limit), xt::all());
        d.train.labels = xt::view(d.train.labels, xt::range(0, c.train_limit));
    }
    return d;
}

} // namespace lowbit_train
