// SPDX-License-Identifier: MIT
#pragma once
// Test support: a fresh directory under the system temporary directory, removed with everything in it.

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>

namespace lowbit::test {

class temp_dir {
public:
    explicit temp_dir(std::string const& prefix)
    {
        std::random_device seed;
        auto const stamp = std::chrono::steady_clock::now().time_since_epoch().count();
        path_ = std::filesystem::temp_directory_path() /
                ("lowbit_test_" + prefix + "_" + std::to_string(stamp) + "_" + std::to_string(seed()));
        std::filesystem::create_directories(path_);
    }
    temp_dir(temp_dir const&) = delete;
    temp_dir& operator=(temp_dir const&) = delete;
    ~temp_dir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] std::filesystem::path operator/(std::string const& name) const { return path_ / name; }
    [[nodiscard]] std::filesystem::path const& path() const { return path_; }

private:
    std::filesystem::path path_;
};

} // namespace lowbit::test
