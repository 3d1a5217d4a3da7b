// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Umbrella header: includes the whole public API. The library never includes it itself.

#include <lowbit/config.hpp>

#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/parallel/process_group.hpp>
#include <lowbit/random/philox.hpp>

#include <lowbit/quant/bit_width.hpp>
#include <lowbit/quant/clipping.hpp>
#include <lowbit/quant/granularity.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/bound.hpp>
#include <lowbit/quant/overflow.hpp>
#include <lowbit/quant/policy_info.hpp>
#include <lowbit/quant/policy_traits.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/quant/traits.hpp>
#include <lowbit/quant/ste/ste.hpp>

#include <lowbit/kernels/binary_conv2d.hpp>
#include <lowbit/kernels/binary_gemm.hpp>
#include <lowbit/kernels/bit_matrix.hpp>
#include <lowbit/kernels/bitserial_gemm.hpp>
#include <lowbit/kernels/cpu_features.hpp>
#include <lowbit/kernels/int8_gemm.hpp>
#include <lowbit/kernels/int_gemm_output.hpp>
#include <lowbit/kernels/matrix_view.hpp>
#include <lowbit/kernels/pack.hpp>
#include <lowbit/kernels/quantize_params.hpp>
#include <lowbit/kernels/reference/gemm.hpp>
#include <lowbit/kernels/reference/pack.hpp>

#include <lowbit/tensor/dequantize.hpp>
#include <lowbit/tensor/qtensor.hpp>
#include <lowbit/tensor/qtensor_concepts.hpp>
#include <lowbit/tensor/quantize.hpp>

#include <lowbit/io/archive.hpp>
#include <lowbit/io/crc32.hpp>
#include <lowbit/io/io_error.hpp>

#include <lowbit/optim/adam.hpp>
#include <lowbit/optim/optimizer_concepts.hpp>
#include <lowbit/optim/schedule/constant.hpp>
#include <lowbit/optim/schedule/cosine.hpp>
#include <lowbit/optim/schedule/cyclic.hpp>
#include <lowbit/optim/schedule/step_decay.hpp>
#include <lowbit/optim/schedule/warmup.hpp>
#include <lowbit/optim/schedule_concepts.hpp>
#include <lowbit/optim/sgd.hpp>

#include <lowbit/kernels/gemm.hpp>

#include <lowbit/model_summary.hpp>

#include <lowbit/nn/avg_pool2d.hpp>
#include <lowbit/nn/batch_norm.hpp>
#include <lowbit/nn/batch_shards.hpp>
#include <lowbit/nn/buffer.hpp>
#include <lowbit/nn/conv2d.hpp>
#include <lowbit/nn/dense.hpp>
#include <lowbit/nn/flatten.hpp>
#include <lowbit/nn/hardtanh.hpp>
#include <lowbit/nn/layer_concepts.hpp>
#include <lowbit/nn/max_pool2d.hpp>
#include <lowbit/nn/models.hpp>
#include <lowbit/nn/parameter.hpp>
#include <lowbit/nn/relu.hpp>
#include <lowbit/nn/quantize_activation.hpp>
#include <lowbit/nn/residual.hpp>
#include <lowbit/nn/sequential.hpp>
#include <lowbit/nn/softmax_cross_entropy.hpp>
#include <lowbit/nn/summary.hpp>
#include <lowbit/nn/weight.hpp>
#include <lowbit/nn/weight_state.hpp>

#include <lowbit/train/binary_connect.hpp>
#include <lowbit/train/checkpoint.hpp>
#include <lowbit/train/convex_probe.hpp>
#include <lowbit/train/full_precision.hpp>
#include <lowbit/train/method_concepts.hpp>
#include <lowbit/train/rounded.hpp>
#include <lowbit/train/sat.hpp>
#include <lowbit/train/sqwa.hpp>
#include <lowbit/train/stochastic_rounding.hpp>
#include <lowbit/train/trainer.hpp>

#include <lowbit/deploy/code_max_pool.hpp>
#include <lowbit/deploy/compile.hpp>
#include <lowbit/deploy/compile_options.hpp>
#include <lowbit/deploy/input_map.hpp>
#include <lowbit/deploy/level_thresholds.hpp>
#include <lowbit/deploy/lower.hpp>
#include <lowbit/deploy/lowering.hpp>
#include <lowbit/deploy/packed_conv2d.hpp>
#include <lowbit/deploy/packed_dense.hpp>
#include <lowbit/deploy/packed_kbit_conv2d.hpp>
#include <lowbit/deploy/packed_kbit_dense.hpp>
#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_model_file.hpp>
#include <lowbit/deploy/packed_step.hpp>
#include <lowbit/deploy/padding_classes.hpp>
#include <lowbit/deploy/pool_window.hpp>
#include <lowbit/deploy/sign_max_pool.hpp>
#include <lowbit/deploy/sign_thresholds.hpp>
#include <lowbit/deploy/summary.hpp>
#include <lowbit/deploy/weight_lowering.hpp>

#include <lowbit/data/batcher.hpp>
#include <lowbit/data/gather_rows.hpp>
#include <lowbit/data/least_squares.hpp>
#include <lowbit/data/logistic_regression.hpp>
