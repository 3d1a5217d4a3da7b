// SPDX-License-Identifier: MIT
#pragma once
// lowbit-train: the run configuration shared by the command line (train.cpp) and the model runners.

#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit {
class process_group;
}

namespace lowbit_train {

struct config {
    std::string model = "mlp";        // mlp | cnn
    std::string method = "bc";        // fp | bc | sr | r | sqwa | sat
    int bits = 1;                     // 1 | 2 | 4 | 8 (32: float, for sat and fp)
    std::string rounding;             // nearest | stochastic (default: stochastic for sr, nearest otherwise)
    std::string optimizer = "adam";   // sgd | adam
    float lr = 0.01f;
    float momentum = 0.9f;
    std::string schedule = "step";    // constant | step | cosine
    std::size_t batch = 100;
    std::size_t epochs = 3;
    std::uint64_t seed = 1;
    unsigned threads = 2;
    std::string data = "/usr/share/datasets/fashion-mnist";
    std::string log;                  // CSV path, one row per epoch
    std::size_t hidden = 1024;        // MLP width
    std::size_t train_limit = 0;      // use only the first N training images (0: all)
    std::string kernels = "auto";     // auto | lowbit | reference (the convolutions' im2col + sgemm path)
    // SQWA (--method sqwa): float pre-training, then cyclic retraining with captures, averaging, fine-tuning.
    std::size_t fp_epochs = 2;
    std::size_t captures = 3;
    double cycle_epochs = 1.0;
    float cycle_high = 1e-2f;
    float cycle_low = 1e-4f;
    std::size_t finetune_epochs = 1;
    float finetune_lr = 1e-4f;
    std::string save_fp;              // write the float model of step 1 here
    std::string load_fp;              // start from this float model instead of step 1
    std::string save_model;           // write the trained model's state (a checkpoint) here
    std::string surface;              // CSV: the loss on the plane through the first three captures
    std::size_t surface_grid = 9;     // points per side of that plane
    // Fake-quantizer recipes (recipe.hpp): --quantizer, --act-bits, --first-last-bits; SAT options.
    std::string head;                 // bn (dense + BatchNorm) | bias (dense with bias); "": bias with --quantizer / sat, else bn
    std::string quantizer;            // uniform | dorefa | pact | cg-pact | lsq | xnor | twn ("": Li et al.'s grid)
    int act_bits = 32;                // 1 (sign, bc only) | 2 | 4 | 8 | 32 (float)
    int first_last_bits = 8;          // 8 | 32 | 0 (same as --bits)
    bool rescale_hidden = false;      // sat: rescale the hidden layers too (the paper's optional conv rescaling)
    float pact_alpha = 10.0f;         // initial PACT clipping level
    // Resuming (docs/formats.md, "Run state"): checkpoints of the whole run every N steps, and a run continued from one.
    std::size_t checkpoint_every = 0; // steps between checkpoints (0: none)
    std::string checkpoint_dir;       // where they go: ckpt-000001.lbck, ckpt-000002.lbck, ...
    std::string resume;               // continue the run from this checkpoint
    bool summary = false;             // print the model's summary (lowbit::summary) and exit without training
    // Data-parallel training (--distributed, under mpirun): the processes and the shards of each global batch.
    bool distributed = false;
    std::size_t shards = 0;           // 0: one per process
    double peer_timeout = 60.0;       // seconds a message may take before its peer counts as dead
    int gradient_bits = 32;           // 32: float gradients; 8: 8-bit codes with error feedback
    lowbit::process_group* group = nullptr;  // set by main() under --distributed; rank 0 prints and writes files
};

/// Trains and evaluates; prints progress and the final JSON line. Returns the process exit code.
int run_mlp(config const& c);
int run_cnn(config const& c);

} // namespace lowbit_train
