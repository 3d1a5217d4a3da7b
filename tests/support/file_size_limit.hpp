// SPDX-License-Identifier: MIT
#pragma once
// Test support: lowers the process's file size limit (RLIMIT_FSIZE) for a scope, so that a write past it
// fails with EFBIG -- a write error that even root cannot bypass, unlike directory permissions. SIGXFSZ,
// which would end the process, is ignored meanwhile. POSIX only: LOWBIT_TEST_FILE_SIZE_LIMIT is 1 where
// it is available, and tests that use it are compiled only then.

#if defined(__has_include)
#if __has_include(<sys/resource.h>) && __has_include(<signal.h>)
#define LOWBIT_TEST_FILE_SIZE_LIMIT 1
#endif
#endif
#ifndef LOWBIT_TEST_FILE_SIZE_LIMIT
#define LOWBIT_TEST_FILE_SIZE_LIMIT 0
#endif

#if LOWBIT_TEST_FILE_SIZE_LIMIT
#include <signal.h>
#include <sys/resource.h>

#include <stdexcept>

namespace lowbit::test {

class file_size_limit {
public:
    explicit file_size_limit(rlim_t bytes)
    {
        if (::getrlimit(RLIMIT_FSIZE, &old_) != 0) throw std::runtime_error("getrlimit(RLIMIT_FSIZE) failed");
        old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
        rlimit lowered = old_;
        lowered.rlim_cur = bytes;
        if (::setrlimit(RLIMIT_FSIZE, &lowered) != 0) throw std::runtime_error("setrlimit(RLIMIT_FSIZE) failed");
    }
    file_size_limit(file_size_limit const&) = delete;
    file_size_limit& operator=(file_size_limit const&) = delete;
    ~file_size_limit()
    {
        ::setrlimit(RLIMIT_FSIZE, &old_);
        ::signal(SIGXFSZ, old_handler_);
    }

private:
    rlimit old_{};
    void (*old_handler_)(int) = nullptr;
};

} // namespace lowbit::test
#endif
