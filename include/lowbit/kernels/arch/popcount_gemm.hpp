// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// @brief Runs a packed popcount job (arch/popcount_job.hpp) on lowbit's thread pool with the chosen
/// instruction-set path, and the per-thread packing buffer of the popcount GEMMs.
///
/// Tasks are (row block, 64-column block) pairs, row block first, handed out one at a time to the threads
/// of lowbit's pool (run_tasks). Every output element is computed by one task with integer arithmetic, so
/// the result does not depend on the thread count, the schedule or the path.
// IWYU pragma: private

#include <lowbit/config.hpp>
#include <lowbit/kernels/arch/popcount_avx2.hpp>
#include <lowbit/kernels/arch/popcount_avx512.hpp>
#include <lowbit/kernels/arch/popcount_job.hpp>
#include <lowbit/kernels/arch/popcount_scalar.hpp>
#include <lowbit/kernels/cpu_features.hpp>
#include <lowbit/parallel/parallel_for.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace lowbit::kernels::detail {

/// Storage of packed panels, aligned to cache lines.
template <class T>
using panel_buffer = std::vector<T, xsimd::aligned_allocator<T, 64>>;

/// Packing buffer of the calling thread, reused across calls (no allocation or page faults in a loop).
/// `slot` 0 holds A panels, 1 holds B panels packed on the fly.
inline std::uint32_t* popcount_buffer(int slot, std::size_t words)
{
    thread_local panel_buffer<std::uint32_t> buffers[2];
    panel_buffer<std::uint32_t>& b = buffers[slot];
    if (b.size() < words) {
        b.clear();
        b.resize(words);
    }
    return b.data();
}

/// Throws unless the running CPU supports path `i` for kernel family `k` (forcing an unsupported path
/// would stop the program with an illegal instruction).
inline void check_isa(isa i, int_kernel k, char const* who)
{
    if (!supports(i, k))
        throw invalid_input(std::string(who) + ": this CPU does not support the " + isa_name(i) +
                            " path; use kernels::best_isa() or check kernels::supports()");
}

/// No packing step (run_tasks' default).
struct no_packing {
    void operator()(std::size_t) const noexcept {}
};

/// Runs pack(u) for the packing units u = 0 .. units-1, then run(t, t + 1) for the tasks t = 0 .. tasks-1,
/// in one job of the pool (or all on the calling thread when `serial`). Units and tasks are handed out one
/// at a time from shared counters; a thread that finds no unit left waits (yielding) only for the units
/// still being packed by the other, then takes tasks. One wake-up of the pool per call instead of one for
/// packing and one for the tasks, and dynamic rather than parallel_for's static halves: on a machine shared
/// with other processes a thread that loses its core for a while no longer holds up the whole call. Each
/// output element still comes from exactly one task, computed the same way by whichever thread runs it,
/// so results do not depend on the thread count or the schedule.
template <class Run, class Pack = no_packing>
void run_tasks(std::size_t tasks, bool serial, Run&& run, std::size_t units = 0, Pack&& pack = Pack{})
{
    if (serial || tasks < 2 || num_threads() < 2) {
        for (std::size_t u = 0; u < units; ++u) pack(u);
        if (tasks) run(std::size_t{0}, tasks);
        return;
    }
    std::atomic<std::size_t> next_unit{0}, packed{0}, next_task{0};
    std::size_t const workers = std::min<std::size_t>(num_threads(), tasks);
    parallel_for(workers, 1, [&](std::size_t, std::size_t) {
        for (std::size_t u = next_unit.fetch_add(1, std::memory_order_relaxed); u < units;
             u = next_unit.fetch_add(1, std::memory_order_relaxed)) {
            pack(u);
            packed.fetch_add(1, std::memory_order_release);
        }
        while (packed.load(std::memory_order_acquire) < units) std::this_thread::yield();
        for (std::size_t t = next_task.fetch_add(1, std::memory_order_relaxed); t < tasks;
             t = next_task.fetch_add(1, std::memory_order_relaxed))
            run(t, t + 1);
    });
}

/// Panels of `words` words per packing unit: about 4 Ki words, so that a unit is worth handing out and two
/// threads still get several each (with 16 Ki words a 1024 x 1024 A made 3 units: one thread packed 2).
inline std::size_t panels_per_unit(std::size_t words) noexcept
{
    return std::max<std::size_t>(1, 4096 / std::max<std::size_t>(words, 1));
}

/// Runs the tasks of `job` (whose plan_popcount_tasks was called) with path `i`, after pack(u) for the
/// packing units 0 .. units-1 (in the same pool job, see run_tasks).
template <class Pack = no_packing>
void run_popcount_job(popcount_job const& job, isa i, std::size_t units = 0, Pack&& pack = Pack{})
{
    using tasks_fn = void (*)(popcount_job const&, std::size_t, std::size_t);
    tasks_fn f = &scalar::popcount_tasks;
#if LOWBIT_X86_DISPATCH
    if (i == isa::avx512)
        f = &avx512::popcount_tasks;
    else if (i == isa::avx2)
        f = &avx2::popcount_tasks;
    else if (cpu().popcnt)
        f = &scalar::popcount_tasks_popcnt;
#else
    (void)i;
#endif
    std::size_t const tasks = job.tasks();
    std::size_t const ops = job.m * job.n * job.k * static_cast<std::size_t>(job.ba * job.bw);
    run_tasks(
        tasks, ops < popcount_parallel_min_ops, [&](std::size_t begin, std::size_t end) { f(job, begin, end); }, units,
        pack);
}

} // namespace lowbit::kernels::detail
