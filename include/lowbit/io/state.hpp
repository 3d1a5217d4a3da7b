// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief io::Stateful: the one protocol by which every component of a training run (optimizer, weight
/// storage, trainer position, SQWA's averaging) writes its own state into an io::archive and reads it back,
/// so that a run can stop and continue bit-identically. Also the metadata helpers those components share.
///
/// A component writes under a name prefix it is given (e.g. `run/optimizer/`): tensors as archive entries
/// named `<prefix><name>`, scalars (counters, seeds, flags, a kind) as metadata `<prefix><name>`, decimal
/// for integers and shortest round-trip text for doubles, so that integer state never forces format
/// version 2 and a float-only run checkpoint stays readable by every lowbit. Everything under
/// run_state_prefix is run state, not model state: train::from_archive skips those entries (docs/formats.md).
///
/// load_state checks everything it reads before it changes anything, and throws io::io_error naming the
/// archive's file and the mismatch (another kind of optimizer, a missing entry, a bad counter).
///
/// @code
/// lowbit::io::archive a;
/// opt.save_state(a, "run/optimizer/");   // adam: kind, slots, t per slot, m and v per slot
/// other.load_state(a, "run/optimizer/"); // throws io_error on a mismatch; `other` unchanged then
/// @endcode

#include <lowbit/io/archive.hpp>
#include <lowbit/io/io_error.hpp>

#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace lowbit::io {

/// @brief Names that begin with this are a run's state (optimizer, trainer position, method state), not
/// a model tensor.
inline constexpr std::string_view run_state_prefix = "run/";

/// @brief A component that writes its run state under a prefix (`save_state(archive&, prefix) const`) and
/// reads it back (`load_state(archive const&, prefix)`, all or nothing). Satisfied by optim::adam,
/// optim::sgd, nn::weight and train::trainer's parts.
template <class T>
concept Stateful = requires(T& t, T const& ct, archive& out, archive const& in, std::string const& prefix) {
    ct.save_state(out, prefix);
    t.load_state(in, prefix);
};

/// @brief Sets metadata @p key to the decimal text of @p v.
template <std::integral T>
void put_meta(archive& a, std::string const& key, T v)
{
    a.meta()[key] = std::to_string(v);
}

/// @brief Sets metadata @p key to the shortest text that reads back as exactly @p v.
inline void put_meta(archive& a, std::string const& key, double v)
{
    char buf[64];
    auto const r = std::to_chars(buf, buf + sizeof buf, v);
    a.meta()[key] = std::string(buf, r.ptr);
}

/// @brief Sets metadata @p key to @p v.
inline void put_meta(archive& a, std::string const& key, std::string_view v) { a.meta()[key] = std::string(v); }
inline void put_meta(archive& a, std::string const& key, char const* v) { a.meta()[key] = std::string(v); }

/// @brief The text of metadata @p key. @throws io_error naming a.source() when it is missing.
inline std::string const& meta_text(archive const& a, std::string const& key)
{
    auto const it = a.meta().find(key);
    if (it == a.meta().end()) throw io_error{a.source(), "metadata '" + key + "' is missing (an incomplete run state)"};
    return it->second;
}

/// @brief Metadata @p key as an integer of type T. @throws io_error when it is missing or not such a number.
template <std::integral T>
T meta_number(archive const& a, std::string const& key)
{
    std::string const& s = meta_text(a, key);
    T v{};
    auto const [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size())
        throw io_error{a.source(), "metadata '" + key + "' is '" + s + "', not a valid count"};
    return v;
}

/// @brief Metadata @p key as a double, exactly as put_meta wrote it. @throws io_error as meta_number.
inline double meta_double(archive const& a, std::string const& key)
{
    std::string const& s = meta_text(a, key);
    double v = 0.0;
    auto const [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size())
        throw io_error{a.source(), "metadata '" + key + "' is '" + s + "', not a number"};
    return v;
}

/// @brief The most slots (parameter tensors) an optimizer's run state may declare: far above any model, and
/// small enough that a damaged count cannot make the reader allocate without bound (24 MiB of empty slots).
inline constexpr std::size_t max_state_slots = std::size_t{1} << 20;

/// @brief Metadata @p key as a count of slots, at most max_state_slots.
/// @throws io_error when it is missing, not a number, or larger.
inline std::size_t meta_slots(archive const& a, std::string const& key)
{
    auto const n = meta_number<std::size_t>(a, key);
    if (n > max_state_slots)
        throw io_error{a.source(), "metadata '" + key + "' is " + std::to_string(n) + ", more than the " +
                                       std::to_string(max_state_slots) + " slots a run state may hold"};
    return n;
}

} // namespace lowbit::io
