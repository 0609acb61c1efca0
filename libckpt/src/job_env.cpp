// The job's end time and restart count, as the batch system reports them.
//
// Slurm 22.05 has no SLURM_JOB_END_TIME (added in 23.02), so without it we ask
// `scontrol show job <id>` once and parse EndTime=YYYY-MM-DDTHH:MM:SS, which scontrol
// prints in the local time zone. Nothing here throws: any failure means "not known", and
// the Checkpointer then simply has no time-limit policy.

#include "job_env.hpp"

#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace ckpt::detail {
namespace {

/// The value of an environment variable, or empty.
std::string env(const char *name) {
  const char *v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

/// Parses a non-negative integer that fills all of `s`; -1 when it does not.
long long parse_count(const std::string &s) {
  if (s.empty() || s.size() > 18)
    return -1;
  long long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

/// Whether `id` looks like a Slurm job id ("123", "123_4" for array tasks, "123+1" for
/// heterogeneous components). Guards the command line built from it.
bool valid_job_id(const std::string &id) {
  if (id.empty() || id.size() > 32)
    return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || c == '_' || c == '+'))
      return false;
  return id[0] >= '0' && id[0] <= '9';
}

/// Output of a shell command (stdout only), or nothing when it could not run or failed.
std::optional<std::string> run(const std::string &cmd) {
  std::FILE *p = ::popen(cmd.c_str(), "r");
  if (!p)
    return std::nullopt;
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0 && out.size() < (1u << 20))
    out.append(buf, n);
  int status = ::pclose(p);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return std::nullopt;
  return out;
}

} // namespace

/// Parses the `EndTime=` value of `scontrol show job` output (local time). Exposed for
/// tests through the declaration below; nothing for Unknown, None, NONE or unlimited.
std::optional<double> parse_scontrol_end_time(const std::string &text);

std::optional<double> parse_scontrol_end_time(const std::string &text) {
  // The key appears once per job record; for array or heterogeneous jobs scontrol may
  // print several records, and the first is the one we asked about.
  std::size_t pos = 0;
  while ((pos = text.find("EndTime=", pos)) != std::string::npos) {
    // Not part of a longer key (there is no such key today, but be strict).
    if (pos == 0 || text[pos - 1] == ' ' || text[pos - 1] == '\n' || text[pos - 1] == '\t')
      break;
    pos += 8;
  }
  if (pos == std::string::npos)
    return std::nullopt;
  std::size_t start = pos + 8;
  std::size_t end = text.find_first_of(" \t\r\n", start);
  std::string v = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
  int Y, M, D, h, m, s;
  char tail;
  if (std::sscanf(v.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &Y, &M, &D, &h, &m, &s, &tail) != 6)
    return std::nullopt; // Unknown, None, NONE, N/A or anything unexpected
  if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || s > 60)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = s;
  tm.tm_isdst = -1; // scontrol prints local time; let mktime decide about DST
  std::time_t t = std::mktime(&tm);
  if (t == static_cast<std::time_t>(-1))
    return std::nullopt;
  return static_cast<double>(t);
}

std::optional<double> job_end_time() {
  // Slurm >= 23.02 exports the end time as seconds since the epoch.
  std::string v = env("SLURM_JOB_END_TIME");
  if (!v.empty()) {
    long long t = parse_count(v);
    if (t > 0)
      return static_cast<double>(t);
    return std::nullopt; // 0 or garbage: no limit known
  }
  std::string id = env("SLURM_JOB_ID");
  if (!valid_job_id(id))
    return std::nullopt;
  // stderr is discarded: outside a reachable cluster this just means "not known". A
  // slurmctld that does not answer must not hold up the start for long (scontrol itself
  // retries for MessageTimeout and more). Runs once, on rank 0, before the first step.
  auto out = run("if command -v timeout >/dev/null 2>&1; then timeout 15 scontrol show job " + id +
                 "; else scontrol show job " + id + "; fi 2>/dev/null");
  if (!out)
    return std::nullopt;
  // Jobs without a limit show EndTime=Unknown, or a date a year away: both are fine.
  return parse_scontrol_end_time(*out);
}

int job_restart_count() {
  long long n = parse_count(env("SLURM_RESTART_COUNT"));
  if (n < 0)
    return 0;
  return n > 1000000000 ? 1000000000 : static_cast<int>(n);
}

} // namespace ckpt::detail
