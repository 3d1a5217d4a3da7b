// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief deploy::packed_kind: which kind of packed model a lowbit archive holds, from its `format` metadata.
/// Every packed file is a lowbit archive (io/archive.hpp); the `format` value names the model kind, and each
/// kind has its own loader and `packed_version`:
///
/// | kind       | `format`                 | model                  | loader                             |
/// |------------|--------------------------|------------------------|------------------------------------|
/// | `mlp`      | `lowbit-packed-mlp`      | deploy::packed_mlp     | load_packed (packed_file.hpp)      |
/// | `cnn`      | `lowbit-packed-cnn`      | deploy::packed_cnn     | load_packed_cnn (packed_cnn_file.hpp) |
/// | `kbit_mlp` | `lowbit-packed-kbit-mlp` | deploy::packed_kbit_mlp| load_packed_kbit (packed_kbit_file.hpp) |
/// | `kbit_cnn` | `lowbit-packed-kbit-cnn` | deploy::packed_kbit_cnn| load_packed_kbit_cnn (packed_kbit_cnn_file.hpp) |
/// | `model`    | `lowbit-packed-model`    | deploy::packed_model   | load_packed_model (packed_model_file.hpp) |
///
/// A loader given a file of another kind names the right loader (detail::expect_kind), so a user who picked
/// the wrong one learns which to call.
///
/// @code
/// switch (lowbit::deploy::packed_kind(lowbit::io::load_archive(file))) {
/// case lowbit::deploy::packed_model_kind::cnn: run(lowbit::deploy::load_packed_cnn(file)); break;
/// // ...
/// }
/// @endcode

#include <lowbit/config.hpp>
#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit::deploy {

/// @brief The `format` metadata of a packed MLP file.
inline constexpr std::string_view packed_format = "lowbit-packed-mlp";
/// @brief The `format` metadata of a packed CNN file.
inline constexpr std::string_view packed_cnn_format = "lowbit-packed-cnn";
/// @brief The `format` metadata of a packed k-bit (PACT) MLP file.
inline constexpr std::string_view packed_kbit_format = "lowbit-packed-kbit-mlp";
/// @brief The `format` metadata of a packed k-bit (PACT) CNN file.
inline constexpr std::string_view packed_kbit_cnn_format = "lowbit-packed-kbit-cnn";

/// @brief The `format` metadata of a packed model of any shape (deploy::packed_model).
inline constexpr std::string_view packed_model_format = "lowbit-packed-model";

/// @brief The kinds of packed model files; see the file comment.
enum class packed_model_kind : std::uint8_t { mlp, cnn, kbit_mlp, kbit_cnn, model };

namespace detail {
struct packed_kind_info {
    packed_model_kind kind;
    std::string_view format;
    std::string_view name;    ///< in messages: "a packed MLP"
    std::string_view loader;  ///< the function that reads it
};
inline constexpr std::array<packed_kind_info, 5> packed_kinds{{
    {packed_model_kind::mlp, packed_format, "packed MLP", "deploy::load_packed"},
    {packed_model_kind::cnn, packed_cnn_format, "packed CNN", "deploy::load_packed_cnn"},
    {packed_model_kind::kbit_mlp, packed_kbit_format, "packed k-bit MLP", "deploy::load_packed_kbit"},
    {packed_model_kind::kbit_cnn, packed_kbit_cnn_format, "packed k-bit CNN", "deploy::load_packed_kbit_cnn"},
    {packed_model_kind::model, packed_model_format, "packed model", "deploy::load_packed_model"},
}};

inline packed_kind_info const& info(packed_model_kind k) noexcept { return packed_kinds[static_cast<std::size_t>(k)]; }
} // namespace detail

/// @brief The kind of the packed model held by @p a, from its `format` metadata.
/// @throws io::io_error naming a.source() when it is not a packed model ("not a packed lowbit model: ...",
/// listing the formats).
inline packed_model_kind packed_kind(io::archive const& a)
{
    auto const format = a.meta().find("format");
    if (format != a.meta().end())
        for (detail::packed_kind_info const& k : detail::packed_kinds)
            if (format->second == k.format) return k.kind;
    std::string expected;
    for (std::size_t i = 0; i < detail::packed_kinds.size(); ++i)
        expected += std::string(i == 0 ? "" : i + 1 == detail::packed_kinds.size() ? " or " : ", ") + "'" +
                    std::string(detail::packed_kinds[i].format) + "'";
    std::string const found = format == a.meta().end() ? std::string("missing") : "'" + format->second + "'";
    throw io::io_error{a.source(), "not a packed lowbit model: metadata 'format' is " + found + ", expected " +
                                       expected +
                                       " (a training checkpoint must be compiled first: lowbit-infer --checkpoint)"};
}

namespace detail {
/// Throws io::io_error naming a.source() unless @p a holds a packed model of kind @p want: "not a packed
/// lowbit model: ..." (packed_kind), or "this is a packed CNN ('lowbit-packed-cnn'), not a packed MLP: load it
/// with deploy::load_packed_cnn".
inline void expect_kind(io::archive const& a, packed_model_kind want)
{
    packed_model_kind const got = packed_kind(a);
    if (got == want) return;
    packed_kind_info const& g = info(got);
    throw io::io_error{a.source(), "this is a " + std::string(g.name) + " ('" + std::string(g.format) + "'), not a " +
                                       std::string(info(want).name) + ": load it with " + std::string(g.loader)};
}
} // namespace detail

} // namespace lowbit::deploy
