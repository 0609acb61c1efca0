#pragma once
// What the batch system tells a job about itself: its end time and its restart count.
// Local calls; the Checkpointer calls them on rank 0 once and broadcasts the answers.

#include <optional>

namespace ckpt::detail {

/// Seconds since the epoch at which the job's time limit ends, when known:
/// SLURM_JOB_END_TIME where it exists (Slurm >= 23.02), else `scontrol show job
/// $SLURM_JOB_ID` (EndTime=...). Nothing outside a SLURM job or for unlimited jobs.
/// Never throws; failures to read mean "not known".
std::optional<double> job_end_time();

/// SLURM_RESTART_COUNT (0 when unset or not in a job).
int job_restart_count();

} // namespace ckpt::detail
