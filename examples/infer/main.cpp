// SPDX-License-Identifier: MIT
// lowbit-infer: compiles a model lowbit-train trained -- a binarized MLP or CNN, an MLP or CNN with k-bit code
// activations (PACT, CG-PACT, DoReFa, LSQ; SAT's too), or lowbit-train's default model with float activations --
// into a packed integer model (lowbit::deploy::compile: a deploy::packed_model, written as a
// `lowbit-packed-model` file) and measures it on the Fashion-MNIST test set: accuracy, agreement with the
// fake-quant model (code by code for sign and code activations), latency at batch 1, throughput at batch 256, and
// the packed model's bytes against the float model's. The last line is one JSON object. A checkpoint's model is
// rebuilt from its `model`, `act_bits` and recipe metadata (lowbit-train --model, --act-bits, --quantizer, ...);
// a packed file's is read from its steps.
// This file is the command line; a checkpoint goes to the runner of its activations (binarized.cpp, kbit.cpp,
// kbit_cnn.cpp, float_activations.cpp), which rebuilds the model as lowbit-train built it (trained_model.hpp) and
// takes the one checkpoint path (deploy_checkpoint.hpp); a packed file goes to packed.cpp.
//
//   lowbit-train --method bc --quantizer xnor --bits 1 --act-bits 1 --first-last-bits 8 --save-model bnn.lbck
//   lowbit-infer --checkpoint bnn.lbck --save-packed bnn.lbpk
//   lowbit-infer --packed bnn.lbpk
//   lowbit-train --model cnn --method bc --quantizer xnor --bits 1 --act-bits 1 --first-last-bits 8 --save-model cnn.lbck
//   lowbit-infer --checkpoint cnn.lbck --save-packed cnn.lbpk
//   lowbit-infer --packed cnn.lbpk
//   lowbit-train --method bc --quantizer pact --bits 2 --act-bits 4 --first-last-bits 8 --save-model pact.lbck
//   lowbit-infer --checkpoint pact.lbck --save-packed pact.lbpk
//   lowbit-infer --packed pact.lbpk
//   lowbit-train --model cnn --method bc --quantizer pact --bits 2 --act-bits 4 --first-last-bits 8 --save-model pc.lbck
//   lowbit-infer --checkpoint pc.lbck --save-packed pc.lbpk
//   lowbit-infer --packed pc.lbpk
//   lowbit-train --save-model bc.lbck                      (the default: BinaryConnect, float activations)
//   lowbit-infer --checkpoint bc.lbck --save-packed bc.lbpk
//   lowbit-infer --packed bc.lbpk
//
// Bad options exit with code 2; a missing, corrupt or mismatched file (or missing data) with code 1.
#include "infer.hpp"

#include <lowbit/io/archive.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>

namespace {

/// Reads the model file of @p o once and hands it on: a packed file to run_packed (deploy::packed_model_from_archive
/// names the file when it is no `lowbit-packed-model`), a checkpoint by lowbit-train's `model`, `act_bits` and
/// `recipe` metadata -- Li et al.'s grid with float activations to the float runner, sign activations (act_bits
/// 1, or a checkpoint without recipe metadata) to the binarized one, anything else to the k-bit runner of its
/// model, which refuses what it cannot build.
int run(lowbit_infer::options const& o)
{
    lowbit::io::archive const file = lowbit::io::load_archive(o.checkpoint.empty() ? o.packed : o.checkpoint);
    if (o.checkpoint.empty()) return lowbit_infer::run_packed(o, file);
    auto const meta = [&](char const* key) {
        auto const it = file.meta().find(key);
        return it == file.meta().end() ? std::string() : it->second;
    };
    std::string const act_bits = meta("act_bits");
    // lowbit-train's default MLP and CNN (Li et al.'s weights with float activations). A checkpoint written before
    // lowbit-train recorded `recipe` says so by naming no quantizer (and no SAT).
    bool const li = meta("recipe") == "0" || (meta("recipe").empty() && meta("quantizer").empty() && meta("method") != "sat");
    if (act_bits == "32" && li) return lowbit_infer::run_float_checkpoint(o, file);
    if (act_bits.empty() || act_bits == "1") return lowbit_infer::run_sign_checkpoint(o, file);
    return meta("model") == "cnn" ? lowbit_infer::run_code_cnn_checkpoint(o, file)
                                  : lowbit_infer::run_code_mlp_checkpoint(o, file);
}

} // namespace

int main(int argc, char** argv)
{
    lowbit_infer::options o;
    CLI::App app{"lowbit-infer: compile a model lowbit-train trained with a recipe whose quantizers have a packed form "
                 "(lowbit-train [--model cnn] --method bc|sat --quantizer xnor|dorefa|pact|cg-pact --act-bits 1|2|4|8 "
                 "--save-model F: sign or k-bit code activations, binary or DoReFa weights; or lowbit-train's default "
                 "model with float activations) into a packed integer model and measure it on Fashion-MNIST"};
    auto* ck = app.add_option("--checkpoint", o.checkpoint, "checkpoint written by lowbit-train --save-model");
    auto* pk = app.add_option("--packed", o.packed,
                              "packed model (a `lowbit-packed-model` file) written by lowbit-infer --save-packed");
    ck->excludes(pk);
    app.add_option("--save-packed", o.save_packed, "write the compiled packed model to this file")->needs(ck);
    app.add_option("--first-last-bits", o.first_last_bits,
                   "weights of the first and last layers of a checkpoint without recipe metadata: 8 (DoReFa, "
                   "lowbit-train --first-last-bits 8) or 1 (XNOR, lowbit-train --first-last-bits 0); a checkpoint's "
                   "metadata and a packed file say it themselves (given, it must agree)")
        ->check(CLI::IsMember({1, 8}))->capture_default_str();
    app.add_option("--hidden", o.hidden, "hidden width of the checkpoint's model (default: its metadata, else 1024)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 16));
    app.add_option("--data", o.data, "folder with the Fashion-MNIST IDX files")->capture_default_str();
    app.add_option("--threads", o.threads, "threads")->check(CLI::Range(1u, 256u))->capture_default_str();
    app.add_option("--runs", o.runs, "batch-1 calls whose median is the latency")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}))->capture_default_str();
    app.add_option("--batch", o.batch, "batch size of the throughput measurement")
        ->check(CLI::Range(std::size_t{1}, std::size_t{10000}))->capture_default_str();
    app.add_flag("!--no-timing", o.timing, "measure accuracy only (one pass over the test set), no latency or "
                                          "throughput: for checks, where the timings would only cost time");
    app.add_flag("--summary", o.summary, "print the summary of the trained model (from --checkpoint) and of the packed "
                                         "model -- per layer its bits, parameters, bytes and MACs -- before measuring");
    try {
        app.parse(argc, argv);
    } catch (CLI::CallForHelp const& e) {
        return app.exit(e);
    } catch (CLI::ParseError const& e) {
        app.exit(e);
        return 2;
    }
    o.first_last_bits_given = app.count("--first-last-bits") > 0;
    if (o.checkpoint.empty() && o.packed.empty()) {
        std::fprintf(stderr, "lowbit-infer: give --checkpoint FILE (a lowbit-train model) or --packed FILE (a packed "
                             "model)\nRun with --help for more information.\n");
        return 2;
    }
    try {
        return run(o);
    } catch (std::exception const& e) {
        std::fprintf(stderr, "lowbit-infer: %s\n", e.what());
        return 1;
    }
}
