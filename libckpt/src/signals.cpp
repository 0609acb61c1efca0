#include "signals.hpp"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <strings.h>

namespace ckpt::detail {

namespace {
volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_received = 0; // a stop signal arrived in this process
std::mutex g_mutex;
int g_installs = 0;
std::map<int, struct sigaction> g_previous;

extern "C" void on_stop_signal(int signo) {
  g_stop = signo;
  g_received = 1;
}
} // namespace

void install_stop_handlers(const std::vector<int> &signals) {
  std::lock_guard<std::mutex> lock(g_mutex);
  ++g_installs;
  for (int s : signals) {
    if (g_previous.count(s))
      continue;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; // interrupted system calls resume; the flag is seen later
    struct sigaction old {};
    if (sigaction(s, &sa, &old) == 0)
      g_previous[s] = old;
  }
}

void uninstall_stop_handlers() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_installs == 0 || --g_installs > 0)
    return;
  // Once a stop signal arrived, more copies of it may still be on their way: SLURM's
  // `scancel --full`, srun and ckpt-run can each deliver the same warning, a moment apart.
  // A copy that came after the old (often default: terminate) handler was back would kill
  // a process that had just checkpointed and was exiting 75. So the flag-only handlers stay.
  if (g_received)
    return;
  for (auto &[s, old] : g_previous)
    sigaction(s, &old, nullptr);
  g_previous.clear();
}

int stop_signal() noexcept { return g_stop; }
void raise_stop_flag(int signo) noexcept { g_stop = signo; }
void clear_stop_flag() noexcept { g_stop = 0; }

int parse_signal(const char *name) {
  static const std::pair<const char *, int> table[] = {
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"INT", SIGINT},
      {"HUP", SIGHUP},   {"QUIT", SIGQUIT}, {"XCPU", SIGXCPU}, {"ALRM", SIGALRM}};
  if (strncasecmp(name, "SIG", 3) == 0)
    name += 3;
  for (auto &[n, s] : table)
    if (strcasecmp(name, n) == 0)
      return s;
  char *end = nullptr;
  long v = std::strtol(name, &end, 10);
  if (end && *end == '\0' && v > 0 && v < 65)
    return static_cast<int>(v);
  return 0;
}

} // namespace ckpt::detail

#include <ckpt/signals.hpp>

namespace ckpt {

StopSignals::StopSignals(const std::vector<int> &signals) {
  if (!signals.empty()) {
    detail::install_stop_handlers(signals);
    installed_ = true;
  }
}

StopSignals::~StopSignals() {
  if (installed_)
    detail::uninstall_stop_handlers();
}

void clear_stop_request() noexcept { detail::clear_stop_flag(); }

} // namespace ckpt
