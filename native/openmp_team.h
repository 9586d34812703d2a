// Idle threads give back their OpenMP team: libgomp lets a team's workers spin between parallel
// regions only while the process has no more workers than CPUs (docs/NATIVE.md, "OpenMP teams").
#pragma once

namespace dove {

// Any thread, outside a parallel region: ends the calling thread's libgomp team (its next parallel
// region starts a new one). A no-op elsewhere, or with DOVE_OMP_RELEASE=0.
void releaseOpenMpTeam() noexcept;

}  // namespace dove
