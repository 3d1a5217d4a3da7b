// SPDX-License-Identifier: MIT
#pragma once
// Test support for reading a deploy::packed_model's steps: their kinds as one string, to check what a model was
// lowered to ("nhwc input iconv>signs pool ... int>floats"), and the integer steps that write a given encoding.

#include <lowbit/deploy/packed_model.hpp>
#include <lowbit/deploy/packed_step.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace lowbit::test {

/// What an integer step writes, as the suffix of its kind: ">signs", ">codes" or ">floats".
inline char const* writes_suffix(deploy::encoding e)
{
    return e == deploy::encoding::signs ? ">signs" : e == deploy::encoding::codes ? ">codes" : ">floats";
}

/// The kinds of a packed model's steps, in order (residual blocks as "residual[...]").
inline std::string step_kinds(std::span<deploy::packed_step const> steps)
{
    std::string s;
    for (deploy::packed_step const& p : steps) {
        if (!s.empty()) s += " ";
        std::visit(
            [&]<class S>(S const& step) {
                if constexpr (std::is_same_v<S, deploy::input_codes_step>) s += "input";
                else if constexpr (std::is_same_v<S, deploy::integer_dense_step>)
                    s += std::string("int") + writes_suffix(step.writes());
                else if constexpr (std::is_same_v<S, deploy::float_dense_step>) s += "float_dense";
                else if constexpr (std::is_same_v<S, deploy::batch_norm_step>) s += "bn";
                else if constexpr (std::is_same_v<S, deploy::clamp_step>) s += "clamp";
                else if constexpr (std::is_same_v<S, deploy::sign_step>) s += "sign";
                else if constexpr (std::is_same_v<S, deploy::codes_step>) s += "codes";
                else if constexpr (std::is_same_v<S, deploy::decode_step>) s += "decode";
                else if constexpr (std::is_same_v<S, deploy::nhwc_step>) s += "nhwc";
                else if constexpr (std::is_same_v<S, deploy::integer_conv_step>)
                    s += std::string("iconv") + writes_suffix(step.writes());
                else if constexpr (std::is_same_v<S, deploy::float_conv_step>) s += "float_conv";
                else if constexpr (std::is_same_v<S, deploy::max_pool_step>) s += "pool";
                else if constexpr (std::is_same_v<S, deploy::flatten_step>) s += "flatten";
                else s += "residual[" + step_kinds(step.inner) + "]";
            },
            p.op);
    }
    return s;
}

/// The kinds of @p m's steps.
inline std::string step_kinds(deploy::packed_model const& m) { return step_kinds(m.steps()); }

/// The indices of @p m's integer steps (convolutions and dense layers) that write @p e, in order.
inline std::vector<std::size_t> integer_steps(deploy::packed_model const& m, deploy::encoding e)
{
    std::vector<std::size_t> at;
    for (std::size_t i = 0; i < m.steps().size(); ++i)
        std::visit(
            [&]<class S>(S const& step) {
                if constexpr (std::is_same_v<S, deploy::integer_conv_step> ||
                              std::is_same_v<S, deploy::integer_dense_step>)
                    if (step.writes() == e) at.push_back(i);
            },
            m.steps()[i].op);
    return at;
}

} // namespace lowbit::test
