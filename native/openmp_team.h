// Idle threads give back their OpenMP team: libgomp lets a team's workers spin between parallel
// regions only while the process has no more workers than CPUs (docs/NATIVE.md, "OpenMP teams").
#pragma once

#include <chrono>

namespace dove {

// Any thread, outside a parallel region: ends the calling thread's libgomp team (its next parallel
// region starts a new one). A no-op elsewhere, or with DOVE_OMP_RELEASE=0.
void releaseOpenMpTeam() noexcept;

// A module thread keeps its team while it waits a few microseconds for its next call
// (module_executor.cpp), so that back-to-back calls on one module reuse it. A job starting on
// another thread must not run beside that idle team: libgomp then counts more workers than CPUs
// and makes every team's workers sleep at each region. Alternating two modules (a Tokenizer's
// encode, a Reconstructor's decode) ran up to 4.4x slower than the same calls back to back.
// So a thread holding an idle team says so (IdleTeam), a job that starts elsewhere announces itself
// (startJob), and the idle thread then ends its team before that job's first parallel region.

// Any thread, as a job that runs parallel regions starts on it: announces the job, then waits (at
// most `maxWait`) until no other thread holds an idle team.
void startJob(std::chrono::microseconds maxWait = std::chrono::microseconds(500)) noexcept;
// The number of jobs started so far in the process (startJob).
unsigned long jobsStarted() noexcept;

// A thread holding its team while idle, for the scope of the wait. release() ends the team first,
// unless idle teams are being kept for a while because the last releases were slow (the machine is
// oversubscribed; openmp_team.cpp): then it neither counts as idle nor releases.
class IdleTeam {
 public:
  IdleTeam() noexcept;
  ~IdleTeam() noexcept;
  IdleTeam(const IdleTeam&) = delete;
  IdleTeam& operator=(const IdleTeam&) = delete;
  // Ends the calling thread's team and stops counting it as idle (once; the destructor then only
  // stops counting).
  void release() noexcept;

 private:
  bool counted_;
};

}  // namespace dove
