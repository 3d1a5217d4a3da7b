// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Granularity of scales: one step for the whole tensor, or one per output channel (axis 0: the rows
/// of a dense weight [out, in], the filters of a conv weight [out, in, kh, kw]).

#include <type_traits>

namespace lowbit {

/// @brief One clipping bound and step for the whole tensor.
struct per_tensor_t { explicit per_tensor_t() = default; };
/// @brief One clipping bound and step per slice along axis 0 (output channels).
struct per_channel_t { explicit per_channel_t() = default; };

inline constexpr per_tensor_t per_tensor{};
inline constexpr per_channel_t per_channel{};

/// @brief A granularity tag.
template <class T>
concept Granularity = std::is_same_v<T, per_tensor_t> || std::is_same_v<T, per_channel_t>;

} // namespace lowbit
