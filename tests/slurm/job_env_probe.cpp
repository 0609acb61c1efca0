// Prints what ckpt::detail::job_end_time() and job_restart_count() return, so that the
// SLURM tests can compare them with what the real cluster says about the job.
//   job_env_probe              -> "end_time=<epoch seconds|none> restart_count=<n>"
//   job_env_probe --parse FILE -> "end_time=..." for saved `scontrol show job` output
#include "job_env.hpp"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace ckpt::detail {
std::optional<double> parse_scontrol_end_time(const std::string &text);
}

static void print_end(std::optional<double> t) {
  if (t)
    std::printf("end_time=%.0f", *t);
  else
    std::printf("end_time=none");
}

int main(int argc, char **argv) {
  if (argc == 3 && std::strcmp(argv[1], "--parse") == 0) {
    std::ifstream in(argv[2]);
    std::stringstream ss;
    ss << in.rdbuf();
    print_end(ckpt::detail::parse_scontrol_end_time(ss.str()));
    std::printf("\n");
    return 0;
  }
  print_end(ckpt::detail::job_end_time());
  std::printf(" restart_count=%d\n", ckpt::detail::job_restart_count());
  return 0;
}
