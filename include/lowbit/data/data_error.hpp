// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief The exception thrown by every dataset reader in `lowbit::data`.

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace lowbit::data {

/// @brief Thrown when a dataset file is missing, malformed or inconsistent.
///
/// The message always has the form `lowbit: <file>: <problem>`, e.g.
/// `lowbit: /path/x.gz: truncated: expected 47040000 bytes of data, got 1000`, so that a user who
/// only sees `what()` (in a log, or from an uncaught exception) knows which file to look at and why.
/// The file and the problem are also kept apart for callers that want to report them differently.
struct data_error : std::runtime_error {
    /// @brief Builds the error for @p file, described by @p problem (no trailing period).
    data_error(std::filesystem::path const& file, std::string_view problem)
        : std::runtime_error{"lowbit: " + file.string() + ": " + std::string{problem}},
          file_{file},
          problem_{problem} {}

    /// @brief The file the problem was found in.
    [[nodiscard]] std::filesystem::path const& file() const noexcept { return file_; }

    /// @brief The problem alone, without the `lowbit: <file>: ` prefix.
    [[nodiscard]] std::string const& problem() const noexcept { return problem_; }

private:
    std::filesystem::path file_;
    std::string problem_;
};

} // namespace lowbit::data
