// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Umbrella header of lowbit::ste: fake quantizers with a backward pass (DoReFa, PACT / CG-PACT, LSQ,
/// XNOR-Net, TWN, SQWA's uniform weights). See docs/quantizers.md, "Quantizers with gradients".

#include <lowbit/quant/ste/dorefa_activation.hpp>  // IWYU pragma: export
#include <lowbit/quant/ste/dorefa_weight.hpp>      // IWYU pragma: export
#include <lowbit/quant/ste/fake_quantizer_concepts.hpp>  // IWYU pragma: export
#include <lowbit/quant/ste/lsq.hpp>                // IWYU pragma: export
#include <lowbit/quant/ste/pact.hpp>               // IWYU pragma: export
#include <lowbit/quant/ste/pact_concepts.hpp>      // IWYU pragma: export
#include <lowbit/quant/ste/sat_rescale.hpp>        // IWYU pragma: export
#include <lowbit/quant/ste/sign_activation.hpp>    // IWYU pragma: export
#include <lowbit/quant/ste/tanh_clamp.hpp>         // IWYU pragma: export
#include <lowbit/quant/ste/any_quantizer.hpp>      // IWYU pragma: export
#include <lowbit/quant/ste/twn_weight.hpp>         // IWYU pragma: export
#include <lowbit/quant/ste/uniform_weight.hpp>     // IWYU pragma: export
#include <lowbit/quant/ste/xnor_weight.hpp>        // IWYU pragma: export
