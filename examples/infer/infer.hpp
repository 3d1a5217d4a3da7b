// SPDX-License-Identifier: MIT
#pragma once
// lowbit-infer: what the command line (main.cpp) and the model runners share -- the options and the runners'
// entry points. The runners (binarized.cpp: sign-activation MLP and CNN; kbit.cpp: the MLP with k-bit PACT
// activations; kbit_cnn.cpp: the CNN with k-bit PACT activations) are translation units of their own, so that
// their model instantiations compile in parallel and main.cpp stays light.

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
    bool first_last_bits_given = false;  // set on the command line (a checkpoint's metadata must agree)
    std::size_t runs = 200;
    bool timing = true;  // false (--no-timing): accuracy from one pass, no latency or throughput
    std::size_t batch = 256;
    bool summary = false;  // print lowbit::summary of the trained model (a checkpoint's) and of the packed model
};

/// Each runner takes the model file of @p o (--checkpoint or --packed) as main() read it, @p file, measures
/// the model on the Fashion-MNIST test set, prints the report and returns the exit code; it throws (an
/// io::io_error naming the file where the file is at fault) for anything it cannot compile or measure.

/// The binarized MLP: lowbit-train --quantizer xnor --bits 1 --act-bits 1, or a `lowbit-packed-mlp` file.
int run_binarized_mlp(options const& o, lowbit::io::archive const& file);
/// The binarized CNN: lowbit-train --model cnn --quantizer xnor --bits 1 --act-bits 1, or a `lowbit-packed-cnn`
/// file.
int run_binarized_cnn(options const& o, lowbit::io::archive const& file);
/// The MLP with k-bit PACT activations: a checkpoint of one of the recipes in kbit_common.hpp, or a
/// `lowbit-packed-kbit-mlp` file.
int run_kbit_mlp(options const& o, lowbit::io::archive const& file);
/// The CNN with k-bit PACT activations: a checkpoint of lowbit-train --model cnn with one of the recipes in
/// kbit_common.hpp, or a `lowbit-packed-kbit-cnn` file.
int run_kbit_cnn(options const& o, lowbit::io::archive const& file);

/// A model deploy::compile lowers layer by layer (deploy::packed_model): lowbit-train's default MLP or CNN (Li et
/// al.'s weights, float ReLU, the BatchNorm head; --method bc, sr, r or sqwa without --act-bits), or a
/// `lowbit-packed-model` file.
int run_model(options const& o, lowbit::io::archive const& file);

} // namespace lowbit_infer
