// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief io::io_error: the exception thrown when a lowbit checkpoint cannot be written, read or applied.

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace lowbit::io {

/// @brief Thrown when a checkpoint file is missing, unwritable, not a checkpoint, of an unsupported version,
/// truncated, corrupt, or does not fit the model it is loaded into.
///
/// The message has the form `lowbit: <file>: <problem>`, as `lowbit::data::data_error` has, e.g.
/// `lowbit: run/fp.lbck: truncated: expected 7342180 bytes, got 4096 (the file ends in the payloads)`, so that
/// a user who only sees `what()` knows which file to look at and why. The file and the problem are also kept
/// apart for callers that report them differently. (io/ does not depend on data/, hence a type of its own.)
struct io_error : std::runtime_error {
    /// @brief Builds the error for @p file, described by @p problem (no trailing period).
    io_error(std::filesystem::path const& file, std::string_view problem)
        : std::runtime_error{"lowbit: " + (file.empty() ? std::string{"(in memory)"} : file.string()) + ": " +
                             std::string{problem}},
          file_{file},
          problem_{problem}
    {
    }

    /// @brief The file the problem was found in (empty for an archive that was built in memory).
    [[nodiscard]] std::filesystem::path const& file() const noexcept { return file_; }

    /// @brief The problem alone, without the `lowbit: <file>: ` prefix.
    [[nodiscard]] std::string const& problem() const noexcept { return problem_; }

private:
    std::filesystem::path file_;
    std::string problem_;
};

} // namespace lowbit::io
