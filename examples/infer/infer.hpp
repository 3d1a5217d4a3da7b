// SPDX-License-Identifier: MIT
#pragma once
// lowbit-infer: what the command line (main.cpp) and the runs share -- the options and the runs' entry points.
// Every model takes one path (deploy_checkpoint.hpp for a checkpoint, packed.cpp for a packed file); the
// checkpoint runners differ only in the model they rebuild, and are translation units of their own (binarized.cpp:
// sign activations; kbit.cpp and kbit_cnn.cpp: k-bit code activations; float_activations.cpp: Li et al.'s float
// activations), so that their model instantiations compile in parallel and main.cpp stays light.

#include <lowbit/io/archive.hpp>

#include <cstddef>
#include <string>

namespace lowbit_infer {

struct options {
    std::string checkpoint;
    std::string packed;
    std::string save_packed;
    std::size_t hidden = 0;  // 0: the checkpoint's metadata (1024 without it)
    std::string data = LOWBIT_FASHION_MNIST_DIR;
    unsigned threads = 2;
    int first_last_bits = 8;  // 8: DoReFa first and last layers; 1: XNOR (lowbit-train --first-last-bits 0)
    bool first_last_bits_given = false;  // set on the command line (the checkpoint or packed model must agree)
    std::size_t runs = 200;
    bool timing = true;  // false (--no-timing): accuracy from one pass, no latency or throughput
    std::size_t batch = 256;
    bool summary = false;  // print lowbit::summary of the trained model (a checkpoint's) and of the packed model
};

/// Each run takes the model file of @p o (--checkpoint or --packed) as main() read it, @p file, measures the
/// model on the Fashion-MNIST test set, prints the report and returns the exit code; it throws (an io::io_error
/// naming the file where the file is at fault) for anything it cannot compile or measure.

/// A checkpoint of the binarized MLP or CNN: sign activations (lowbit-train --act-bits 1, or a checkpoint without
/// recipe metadata).
int run_sign_checkpoint(options const& o, lowbit::io::archive const& file);
/// A checkpoint of the MLP with k-bit code activations: one of the recipes of trained_model.hpp.
int run_code_mlp_checkpoint(options const& o, lowbit::io::archive const& file);
/// A checkpoint of the CNN with k-bit code activations (lowbit-train --model cnn).
int run_code_cnn_checkpoint(options const& o, lowbit::io::archive const& file);
/// A checkpoint of lowbit-train's default MLP or CNN (Li et al.'s weights, float ReLU, the BatchNorm head;
/// --method bc, sr, r or sqwa without --act-bits).
int run_float_checkpoint(options const& o, lowbit::io::archive const& file);
/// A `lowbit-packed-model` file.
int run_packed(options const& o, lowbit::io::archive const& file);

} // namespace lowbit_infer
