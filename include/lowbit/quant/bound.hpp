// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Tags for where a quantization policy's clipping bound -- and so its scale, the step of its grid --
/// comes from. Every clipping policy and every lowbit::ste policy names one as `bound_type`; policy_traits
/// reads it, and the trainer, deploy and lowbit::summary read it only through policy_traits.
///
/// | tag               | the bound is                                  | examples                                 |
/// |-------------------|-----------------------------------------------|------------------------------------------|
/// | fixed_bound_t     | a constant of the policy                      | clip::fixed_range, DoReFa, sign          |
/// | data_bound_t      | recomputed from the values on every pass       | max_abs, mean_abs, l2_optimal, XNOR, TWN |
/// | learned_bound_t   | a trained parameter (with its own gradient)   | ste::pact's alpha, ste::lsq's step       |
/// | no_bound_t        | absent: the values stay float                 | nn::float_weights_t, ste::tanh_clamp     |

namespace lowbit {

/// @brief The bound is a constant of the policy.
struct fixed_bound_t {};
/// @brief The bound is recomputed from the values themselves on every pass.
struct data_bound_t {};
/// @brief The bound is a parameter that training learns (it is visited as a parameter of kind `clipping`).
struct learned_bound_t {};
/// @brief No bound: the policy keeps float values.
struct no_bound_t {};

} // namespace lowbit
