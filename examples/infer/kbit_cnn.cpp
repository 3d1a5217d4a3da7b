// SPDX-License-Identifier: MIT
// lowbit-infer: checkpoints of the CNN with k-bit code activations (lowbit-train --model cnn with the recipes
// of kbit.cpp; nn::cnn's default widths), rebuilt as lowbit-train built it (trained_model.hpp) and handed to
// the one checkpoint path (deploy_checkpoint.hpp), which compares the codes of the four convolutions (before
// their pooling) and of the hidden dense layer with the fake-quant model's.
#include "deploy_checkpoint.hpp"
#include "infer.hpp"
#include "trained_model.hpp"

#include <lowbit/io/archive.hpp>

#include <utility>

namespace lowbit_infer {

int run_code_cnn_checkpoint(options const& o, lowbit::io::archive const& file)
{
    lowbit_train::config const c = trained_config(o, file, "cnn");
    return with_code_cnn(c, [&](auto model) { return deploy_checkpoint<4>(o, file, c, std::move(model)); });
}

} // namespace lowbit_infer
