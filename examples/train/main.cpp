// SPDX-License-Identifier: MIT
// lowbit-train: trains a binary or low-bit network on Fashion-MNIST with one of Li et al.'s methods
// (fp, bc, sr, r), SQWA or SAT, printing progress, an optional CSV log, and a final JSON line.
//
//   lowbit-train --model mlp --method bc --bits 1 --epochs 3
//
// Bad options print the usage and exit with code 2.
#include "config.hpp"
#include "recipe.hpp"

#include <CLI/CLI.hpp>

#include <lowbit/io/archive.hpp>
#if LOWBIT_TRAIN_WITH_MPI
#include <lowbit/mpi/environment.hpp>
#include <lowbit/mpi/mpi_group.hpp>

#include <csignal>
#include <unistd.h>
#endif

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

/// --check-checkpoint: reads each file completely (format, checksum) and says what it holds.
int check_checkpoints(std::vector<std::string> const& files)
{
    int status = 0;
    for (std::string const& f : files) {
        try {
            lowbit::io::archive const a = lowbit::io::load_archive(f);
            auto const get = [&](char const* key) {
                auto const it = a.meta().find(key);
                return it == a.meta().end() ? std::string("?") : it->second;
            };
            if (a.meta().contains("run/version"))
                std::printf("%s: ok, run state of --method %s, stage %s, step %s (epoch %s, batch %s)\n", f.c_str(),
                            get("method").c_str(), get("run/cli/stage").c_str(), get("run/trainer/step").c_str(),
                            get("run/trainer/epoch").c_str(), get("run/trainer/batch").c_str());
            else
                std::printf("%s: ok, a model's state (%zu tensors)\n", f.c_str(), a.entries().size());
        } catch (std::exception const& e) {
            std::fprintf(stderr, "lowbit-train: %s\n", e.what());
            status = 1;
        }
    }
    return status;
}

/// Trains the model of --model (errors propagate).
int train(lowbit_train::config const& c)
{
    return c.model == "mlp" ? lowbit_train::run_mlp(c) : lowbit_train::run_cnn(c);
}

int run(lowbit_train::config const& c)
{
    try {
        return train(c);
    } catch (std::exception const& e) {
        std::fprintf(stderr, "lowbit-train: %s\n", e.what());
        return 1;
    }
}

#if LOWBIT_TRAIN_WITH_MPI
/// What a process says when mpirun ends it (SIGTERM: another process of the job died or failed).
char stop_message[200];

extern "C" void on_stop(int sig)
{
    ssize_t const written = write(STDERR_FILENO, stop_message, std::strlen(stop_message));
    (void)written;
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

/// --distributed: one process of mpirun's job; rank 0 prints and writes the files.
int run_distributed(int& argc, char**& argv, lowbit_train::config c)
{
    lowbit::mpi::environment env(argc, argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    try {
        auto const timeout = std::chrono::milliseconds(static_cast<long long>(c.peer_timeout * 1000.0));
        lowbit::mpi::mpi_group group(MPI_COMM_WORLD, {.timeout = timeout});
        c.group = &group;
        std::snprintf(stop_message, sizeof stop_message,
                      "lowbit-train: rank %zu of %zu: stopped by mpirun: another process of the job ended (it died "
                      "or failed); the checkpoints written so far are complete\n",
                      group.rank(), group.size());
        std::signal(SIGTERM, on_stop);
        if (group.rank() != 0 && std::freopen("/dev/null", "w", stdout) == nullptr) return 1;
        int const rc = train(c);
        group.barrier();
        return rc;
    } catch (std::exception const& e) {
        // The other processes may be waiting for this one: end the whole job.
        std::fprintf(stderr, "lowbit-train: rank %d: %s\n", rank, e.what());
        std::fflush(stderr);
        lowbit::mpi::environment::abort(1);
    }
}
#endif

} // namespace

int main(int argc, char** argv)
{
    lowbit_train::config c;
    CLI::App app{"lowbit-train: train quantized networks on Fashion-MNIST (Li et al. 2017 methods)"};
    app.add_option("--model", c.model, "mlp (784-1024-1024-10, BN) or cnn (small VGG)")
        ->check(CLI::IsMember({"mlp", "cnn"}))->capture_default_str();
    app.add_option("--method", c.method,
                   "fp (float), bc (BinaryConnect), sr (stochastic rounding), r (rounding), sqwa (SQWA over bc), "
                   "sat (scale-adjusted training)")
        ->check(CLI::IsMember({"fp", "bc", "sr", "r", "sqwa", "sat"}))->capture_default_str();
    app.add_option("--bits", c.bits, "weight bits: 1, 2, 4 or 8 (32: float, with --method sat)")
        ->check(CLI::IsMember({1, 2, 4, 8, 32}))->capture_default_str();
    app.add_option("--quantizer", c.quantizer,
                   "fake quantizer (bc, sat, sqwa): uniform (L2-optimal odd grid), dorefa, pact (DoReFa weights, PACT "
                   "activations), cg-pact, lsq, xnor (1 bit), twn (2 bits); default: Li et al.'s grid, cg-pact for sat")
        ->check(CLI::IsMember({"uniform", "dorefa", "pact", "cg-pact", "lsq", "xnor", "twn"}));
    app.add_option("--head", c.head, "classifier head: bn (dense + BatchNorm, Li et al.) or bias (dense with bias, as "
                                     "PACT and SAT; the default with --quantizer and --method sat, where it is the only choice)")
        ->check(CLI::IsMember({"bn", "bias"}));
    app.add_option("--act-bits", c.act_bits, "activation bits: 1 (sign, replacing the ReLU; with --method bc, or "
                                             "without --quantizer with bc, sr or r at --bits 1 or 2), 2, 4, 8, or 32 "
                                             "(float)")
        ->check(CLI::IsMember({1, 2, 4, 8, 32}))->capture_default_str();
    app.add_option("--first-last-bits", c.first_last_bits,
                   "weight bits of the first and last layers with --quantizer: 8, 32 (float) or 0 (same as --bits)")
        ->check(CLI::IsMember({0, 8, 32}))->capture_default_str();
    app.add_option("--rounding", c.rounding, "nearest or stochastic (default: stochastic for sr, nearest otherwise)")
        ->check(CLI::IsMember({"nearest", "stochastic"}));
    app.add_option("--optimizer", c.optimizer, "sgd (momentum 0.9) or adam")->check(CLI::IsMember({"sgd", "adam"}))->capture_default_str();
    app.add_option("--lr", c.lr, "learning rate")->check(CLI::PositiveNumber)->capture_default_str();
    app.add_option("--schedule", c.schedule, "constant, step (x0.1 at 50% and 75%) or cosine")
        ->check(CLI::IsMember({"constant", "step", "cosine"}))->capture_default_str();
    app.add_option("--batch", c.batch, "minibatch size")->check(CLI::Range(std::size_t{1}, std::size_t{60000}))->capture_default_str();
    app.add_option("--epochs", c.epochs, "epochs")->check(CLI::Range(std::size_t{1}, std::size_t{10000}))->capture_default_str();
    app.add_option("--seed", c.seed, "seed of initialisation, shuffling and stochastic rounding")->capture_default_str();
    app.add_option("--threads", c.threads, "threads")->check(CLI::Range(1u, 256u))->capture_default_str();
    app.add_option("--data", c.data, "folder with the Fashion-MNIST IDX files")->capture_default_str();
    app.add_option("--log", c.log, "CSV file, one row per epoch (losses, accuracies, lr, seconds, images/s, flip_ratio)");
    app.add_option("--hidden", c.hidden, "MLP hidden width")->check(CLI::Range(std::size_t{1}, std::size_t{1} << 16))->capture_default_str();
    app.add_option("--train-limit", c.train_limit, "use only the first N training images (0: all)")->capture_default_str();
    app.add_option("--kernels", c.kernels, "the CNN's convolutions: lowbit (lowbit's direct kernels), reference "
                                           "(im2col + sgemm, the formulation they are tested against) or auto (lowbit "
                                           "in optimised builds for AVX2 or AVX-512, else reference)")
        ->check(CLI::IsMember({"auto", "lowbit", "reference"}))->capture_default_str();
    auto* sqwa = app.add_option_group("SQWA", "--method sqwa: float pre-training, cyclic retraining with captures of "
                                              "the quantized model, averaging, BN re-estimation, fine-tuning");
    sqwa->add_option("--fp-epochs", c.fp_epochs, "float pre-training epochs (step 1)")->capture_default_str();
    sqwa->add_option("--captures", c.captures, "captured quantized models (cycles of step 3)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1000}))->capture_default_str();
    sqwa->add_option("--cycle-epochs", c.cycle_epochs, "cycle length in epochs")->check(CLI::PositiveNumber)->capture_default_str();
    sqwa->add_option("--cycle-high", c.cycle_high, "rate at the start of each cycle")->check(CLI::PositiveNumber)->capture_default_str();
    sqwa->add_option("--cycle-low", c.cycle_low, "rate at the end of each cycle")->check(CLI::PositiveNumber)->capture_default_str();
    sqwa->add_option("--finetune-epochs", c.finetune_epochs, "fine-tuning epochs (step 5)")->capture_default_str();
    sqwa->add_option("--finetune-lr", c.finetune_lr, "fine-tuning rate")->check(CLI::PositiveNumber)->capture_default_str();
    auto* sat = app.add_option_group("SAT", "--method sat: DoReFa weights, CG-PACT activations, last layer rescaled to "
                                            "variance 1/n_out; use with --optimizer sgd --schedule cosine as the paper");
    sat->add_flag("--rescale-hidden", c.rescale_hidden, "rescale the hidden layers' weights too (the paper's optional "
                                                         "conv rescaling)");
    sat->add_option("--pact-alpha", c.pact_alpha, "initial PACT alpha")->check(CLI::PositiveNumber)->capture_default_str();
    app.add_option("--save-fp", c.save_fp, "save the float model to this checkpoint file (--method fp: after "
                                           "training; --method sqwa: after step 1)");
    sqwa->add_option("--surface", c.surface, "write the test loss on the plane through the first three captured "
                                             "models to this CSV (the paper's loss-surface picture)");
    sqwa->add_option("--surface-grid", c.surface_grid, "points per side of that plane")
        ->check(CLI::Range(std::size_t{2}, std::size_t{101}))->capture_default_str();
    app.add_flag("--summary", c.summary, "print the model's summary -- per layer its output shape, weight and activation "
                                         "bits, parameters, bytes as float and packed, MACs by kind -- and exit "
                                         "without reading data or training");
    app.add_option("--save-model", c.save_model, "save the trained model's state to this checkpoint file (weights as "
                                                 "their real values, biases, BatchNorm statistics, learned bounds)");
    app.add_option("--load-fp", c.load_fp, "start from this checkpoint, saved by --save-fp from a model of the same "
                                           "architecture (--method sqwa: instead of step 1)");
    auto* resume = app.add_option_group("Resume", "checkpoints of the whole run (model, optimizer, position, seeds, "
                                                  "SQWA's captures), and a run continued from one bit-identically");
    resume->add_option("--checkpoint-every", c.checkpoint_every, "write a checkpoint every N optimizer steps")
        ->check(CLI::PositiveNumber);
    resume->add_option("--checkpoint-dir", c.checkpoint_dir, "the directory for them: ckpt-000001.lbck, "
                                                             "ckpt-000002.lbck, ... (created if missing)");
    resume->add_option("--resume", c.resume, "continue the run from this checkpoint, with the options it was "
                                             "written with (it refuses others, naming them)");
    auto* dist = app.add_option_group("Distributed", "data-parallel training over the processes of mpirun "
                                                     "(lowbit::mpi; docs/distributed.md)");
    dist->add_flag("--distributed", c.distributed,
                   "each process of `mpirun -np N lowbit-train --distributed ...` trains on its shards of every global "
                   "batch of --batch rows; gradients and BatchNorm statistics are summed over the processes in a fixed "
                   "order; rank 0 prints, logs and writes the files");
    dist->add_option("--shards", c.shards, "shards of each global batch (default: one per process); the weights "
                                           "depend on the shards, not on the processes: -np 1 --shards 2 gives the "
                                           "bits of -np 2")
        ->check(CLI::Range(std::size_t{1}, std::size_t{4096}));
    dist->add_option("--gradient-bits", c.gradient_bits,
                     "what the processes send for the gradients: 32 (floats, summed in a fixed order: the bits "
                     "depend on --shards only) or 8 (8-bit codes with stochastic rounding and error feedback, a "
                     "quarter of the bytes; the bits depend on the number of processes)")
        ->check(CLI::IsMember({8, 32}))->capture_default_str();
    dist->add_option("--peer-timeout", c.peer_timeout, "seconds a message may take before its peer counts as dead "
                                                       "(the job then ends with an error)")
        ->check(CLI::PositiveNumber)->capture_default_str();
    std::vector<std::string> check_files;
    resume->add_option("--check-checkpoint", check_files, "only read these checkpoint files, print what each "
                                                          "holds, and exit with 1 if one is damaged");
    try {
        app.parse(argc, argv);
    } catch (CLI::CallForHelp const& e) {
        return app.exit(e);
    } catch (CLI::ParseError const& e) {
        app.exit(e);
        return 2;
    }
    if (!check_files.empty()) return check_checkpoints(check_files);
    if (auto const problem = lowbit_train::check_recipe(c); !problem.empty()) {
        std::fprintf(stderr, "lowbit-train: %s\nRun with --help for more information.\n", problem.c_str());
        return 2;
    }
    if (c.distributed) {
#if LOWBIT_TRAIN_WITH_MPI
        return run_distributed(argc, argv, c);
#else
        std::fprintf(stderr, "lowbit-train: --distributed needs MPI, and this lowbit-train was built without it "
                             "(install libopenmpi-dev and rebuild: lowbit::mpi)\n");
        return 2;
#endif
    }
    return run(c);
}
