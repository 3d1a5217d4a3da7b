// SPDX-License-Identifier: MIT
#pragma once
// lowbit-train: the training run, generic over the model. Each model's runner (mlp.cpp, cnn.cpp) is its own
// translation unit, so the two compile in parallel.

#include "config.hpp"

#include <lowbit/data/fashion_mnist.hpp>
#include <xtensor/xview.hpp>
#include <lowbit/lowbit.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/full_precision.hpp>
#include <lowbit/train/rounded.hpp>
#include <lowbit/train/sqwa.hpp>
#include <lowbit/train/stochastic_rounding.hpp>
#include <lowbit/train/trainer.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
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

    bool on_epoch(lowbit::train::epoch_info const& e)
    {
        auto const ev = t->evaluate(*test_x, *test_y);
        last_test_acc = ev.accuracy;
        double const ips = e.seconds > 0 ? static_cast<double>(e.images) / e.seconds : 0.0;
        float const lr = schedule->rate(static_cast<double>(e.epoch + 1));
        std::printf("%sepoch %zu: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.0f img/s | lr %.3g\n",
                    tty ? "\r\033[K" : "", e.epoch + 1, static_cast<double>(e.train_loss),
                    static_cast<double>(e.train_accuracy), static_cast<double>(ev.loss), static_cast<double>(ev.accuracy),
                    ips, static_cast<double>(lr));
        std::fflush(stdout);
        if (csv && *csv)
            *csv << e.epoch + 1 << ',' << e.train_loss << ',' << e.train_accuracy << ',' << ev.loss << ',' << ev.accuracy
                 << ',' << lr << ',' << e.seconds << ',' << ips << '\n'
                 << std::flush;
        return false;
    }
};

template <class Model, class Method, class Images>
int train_and_report(config const& c, Model& model, Method method, Images const& train_x,
                     xt::xtensor<std::uint8_t, 1> const& train_y, Images const& test_x,
                     xt::xtensor<std::uint8_t, 1> const& test_y, std::string const& rounding)
{
    lowbit::set_num_threads(c.threads);
    any_schedule const sched{.kind = c.schedule, .lr = c.lr, .epochs = static_cast<double>(c.epochs)};
    lowbit::train::trainer t{model, method, any_optimizer(c), sched};
    std::ofstream csv;
    if (!c.log.empty()) {
        csv.open(c.log);
        if (!csv) throw std::runtime_error("cannot write the log file " + c.log);
        csv << "epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds,train_images_per_s\n";
    }
    progress bar;
    epoch_report<decltype(t), Images> report{&t, &test_x, &test_y, &sched, c.log.empty() ? nullptr : &csv, bar.tty()};
    lowbit::train::fit_result r;
    if constexpr (std::is_same_v<Method, lowbit::train::sqwa<lowbit::train::binary_connect>>) {
        // Step 1 with the float method, then SQWA's steps 2-5; the report shows the final model.
        {
            lowbit::train::trainer fp{model, lowbit::train::full_precision{}, any_optimizer(c), sched};
            r = fp.fit(train_x, train_y, {.epochs = c.fp_epochs, .batch = c.batch, .seed = c.seed}, bar);
        }
        method.options = {.captures = c.captures, .finetune_epochs = c.finetune_epochs, .finetune_lr = c.finetune_lr};
        auto const s = method.run(model, any_optimizer(c),
                                  lowbit::optim::schedule::cyclic{.high = c.cycle_high, .low = c.cycle_low,
                                                                  .epochs_per_cycle = c.cycle_epochs},
                                  train_x, train_y, {.batch = c.batch, .seed = c.seed});
        r.epochs += s.retrain.epochs + s.finetune.epochs;
        r.images += s.retrain.images + s.finetune.images;
        r.seconds += s.retrain.seconds + s.finetune.seconds;
        any_schedule const finetune{.kind = "constant", .lr = c.finetune_lr};
        report.schedule = &finetune;
        (void)report.on_epoch({.epoch = r.epochs - 1, .train_loss = s.finetune.last_loss,
                               .train_accuracy = s.finetune.last_accuracy, .seconds = r.seconds, .images = r.images});
    } else {
        r = t.fit(train_x, train_y, {.epochs = c.epochs, .batch = c.batch, .seed = c.seed}, bar, report);
    }
    std::printf("{\"model\": \"%s\", \"method\": \"%s\", \"bits\": %d, \"rounding\": \"%s\", \"optimizer\": \"%s\", "
                "\"lr\": %g, \"batch\": %zu, \"epochs\": %zu, \"seed\": %llu, \"threads\": %u, \"test_acc\": %.4f, "
                "\"train_images_per_s\": %.1f, \"weight_bytes\": %zu}\n",
                c.model.c_str(), c.method.c_str(), c.method == "fp" ? 32 : c.bits, rounding.c_str(), c.optimizer.c_str(),
                static_cast<double>(c.lr), c.batch, r.epochs, static_cast<unsigned long long>(c.seed), c.threads,
                static_cast<double>(report.last_test_acc), r.images_per_second(), t.weight_bytes());
    return 0;
}

/// Weight quantizer of the CLI: the grid of the PyTorch peer, 2^b levels over [-1, 1] (binary at 1 bit).
template <int Bits, class Rounding>
using cli_quantizer = lowbit::quantizer<Bits, Rounding, lowbit::clip::fixed_range, lowbit::grid::symmetric_even>;

/// Calls f(policy, method) with the types the configuration names.
template <class F>
int dispatch(config const& c, F&& f)
{
    using namespace lowbit;
    if (c.method == "fp") return f(nn::float_weights, train::full_precision{}, "none");
    bool const stochastic = c.rounding.empty() ? c.method == "sr" : c.rounding == "stochastic";
    auto with_bits = [&]<class Rounding>(Rounding, auto method) {
        char const* rname = std::is_same_v<Rounding, stochastic_t> ? "stochastic" : "nearest";
        switch (c.bits) {
        case 1: return f(cli_quantizer<1, Rounding>{.clipping = {.bound = 1.0f}}, method, rname);
        case 2: return f(cli_quantizer<2, Rounding>{.clipping = {.bound = 1.0f}}, method, rname);
        case 4: return f(cli_quantizer<4, Rounding>{.clipping = {.bound = 1.0f}}, method, rname);
        default: return f(cli_quantizer<8, Rounding>{.clipping = {.bound = 1.0f}}, method, rname);
        }
    };
    if (c.method == "sqwa") {  // SQWA's quantizer: the L2-optimal step on the symmetric grid (ternary at 2 bits)
        auto const m = train::sqwa<train::binary_connect>{};
        switch (c.bits) {
        case 1: return f(quantizer<1, nearest_even_t, clip::l2_optimal>{}, m, "nearest");
        case 2: return f(quantizer<2, nearest_even_t, clip::l2_optimal>{}, m, "nearest");
        case 4: return f(quantizer<4, nearest_even_t, clip::l2_optimal>{}, m, "nearest");
        default: return f(quantizer<8, nearest_even_t, clip::l2_optimal>{}, m, "nearest");
        }
    }
    if (c.method == "sr") return with_bits(stochastic_t{}, train::stochastic_rounding{});
    if (c.method == "r") return with_bits(nearest_even_t{}, train::rounded{});
    return stochastic ? with_bits(stochastic_t{}, train::binary_connect{})
                      : with_bits(nearest_even_t{}, train::binary_connect{});
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
