// SPDX-License-Identifier: MIT
#pragma once
// lowbit-train: the run configuration shared by the command line (train.cpp) and the model runners.

#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit_train {

struct config {
    std::string model = "mlp";        // mlp | cnn
    std::string method = "bc";        // fp | bc | sr | r
    int bits = 1;                     // 1 | 2 | 4 | 8
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
};

/// Trains and evaluates; prints progress and the final JSON line. Returns the process exit code.
int run_mlp(config const& c);
int run_cnn(config const& c);

} // namespace lowbit_train
