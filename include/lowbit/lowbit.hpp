// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Umbrella header: includes the whole public API. The library never includes it itself.

#include <lowbit/config.hpp>

#include <lowbit/parallel/parallel_for.hpp>
#include <lowbit/random/philox.hpp>

#include <lowbit/quant/bit_width.hpp>
#include <lowbit/quant/clipping.hpp>
#include <lowbit/quant/granularity.hpp>
#include <lowbit/quant/grid.hpp>
#include <lowbit/quant/overflow.hpp>
#include <lowbit/quant/quantizer.hpp>
#include <lowbit/quant/rounding.hpp>
#include <lowbit/quant/traits.hpp>

#include <lowbit/kernels/pack.hpp>
#include <lowbit/kernels/quantize_params.hpp>
#include <lowbit/kernels/reference/pack.hpp>

#include <lowbit/tensor/dequantize.hpp>
#include <lowbit/tensor/qtensor.hpp>
#include <lowbit/tensor/qtensor_concepts.hpp>
#include <lowbit/tensor/quantize.hpp>
