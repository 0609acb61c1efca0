#include "signals.hpp"

#include <ckpt/error.hpp>
#include <ckpt/options.hpp>

#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <string>

namespace ckpt {

std::vector<int> Options::default_signals() { return {SIGUSR1, SIGTERM}; }

namespace {
const char *env(const char *name) {
  const char *v = std::getenv(name);
  return v && *v ? v : nullptr;
}
[[noreturn]] void bad(const char *name, const char *value, const char *expected) {
  throw Error(Errc::invalid_argument, -1,
              fmt::format("environment variable {}='{}' is not {}", name, value, expected));
}
std::int64_t to_int(const char *name, const char *v, std::int64_t min) {
  char *end = nullptr;
  long long x = std::strtoll(v, &end, 10);
  if (!end || *end != '\0' || x < min)
    bad(name, v, min == 0 ? "a non-negative integer" : "an integer");
  return x;
}
double to_double(const char *name, const char *v) {
  char *end = nullptr;
  double x = std::strtod(v, &end);
  if (!end || *end != '\0' || !(x >= 0))
    bad(name, v, "a non-negative number");
  return x;
}
bool to_bool(const char *name, const char *v) {
  std::string s(v);
  if (s == "1" || s == "yes" || s == "true" || s == "on")
    return true;
  if (s == "0" || s == "no" || s == "false" || s == "off")
    return false;
  bad(name, v, "a boolean (1/0, yes/no, true/false)");
}
} // namespace

Options Options::with_env() const {
  Options o = *this;
  if (auto v = env("CKPT_DIR"))
    o.dir = v;
  if (auto v = env("CKPT_EVERY")) {
    if (std::string(v) == "auto") {
      o.every_auto = true;
      o.every = 0;
    } else {
      o.every = to_int("CKPT_EVERY", v, 0);
      o.every_auto = false;
    }
  }
  if (auto v = env("CKPT_SECONDS"))
    o.seconds = to_double("CKPT_SECONDS", v);
  if (auto v = env("CKPT_KEEP"))
    o.keep = static_cast<int>(to_int("CKPT_KEEP", v, 0));
  if (auto v = env("CKPT_QUIET"))
    o.quiet = to_bool("CKPT_QUIET", v);
  if (auto v = env("CKPT_FINAL"))
    o.final = to_bool("CKPT_FINAL", v);
  if (auto v = env("CKPT_MODE")) {
    std::string s(v);
    if (s == "sync")
      o.mode = Mode::sync;
    else if (s == "async")
      o.mode = Mode::async;
    else
      bad("CKPT_MODE", v, "sync or async");
  }
  if (const char *v = std::getenv("CKPT_SIGNALS")) {
    o.signals.clear();
    std::string s(v);
    if (s != "none" && !s.empty()) {
      std::size_t start = 0;
      while (start <= s.size()) {
        std::size_t end = s.find(',', start);
        std::string one = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
        int sig = detail::parse_signal(one.c_str());
        if (sig == 0)
          bad("CKPT_SIGNALS", v, "a list of signal names like USR1,TERM (or none)");
        o.signals.push_back(sig);
        if (end == std::string::npos)
          break;
        start = end + 1;
      }
    }
  }
  if (auto v = env("CKPT_MARGIN"))
    o.margin_seconds = to_double("CKPT_MARGIN", v);
  if (auto v = env("CKPT_MAX_RESTARTS"))
    o.max_restarts = static_cast<int>(to_int("CKPT_MAX_RESTARTS", v, 0));
  if (auto v = env("CKPT_PROGRESS"))
    o.progress = to_bool("CKPT_PROGRESS", v);
  if (auto v = env("CKPT_FRESH"))
    o.fresh = to_bool("CKPT_FRESH", v);
  if (auto v = env("CKPT_LOCAL_DIR"))
    o.local_dir = v;
  if (auto v = env("CKPT_FLUSH_EVERY"))
    o.flush_every = static_cast<int>(to_int("CKPT_FLUSH_EVERY", v, 0));
  if (auto v = env("CKPT_SMALL_BYTES"))
    o.small_bytes = static_cast<std::uint64_t>(to_int("CKPT_SMALL_BYTES", v, 0));
  if (auto v = env("CKPT_WRITER_CPUS")) {
    const std::string s(v);
    if (s == "any" || s == "inherit")
      o.writer_any_cpu = s == "any";
    else
      bad("CKPT_WRITER_CPUS", v, "any or inherit");
  }
  if (auto v = env("CKPT_AGREE_SECONDS"))
    o.agree_seconds = to_double("CKPT_AGREE_SECONDS", v);
  if (auto v = env("CKPT_MTBF"))
    o.mtbf_seconds = to_double("CKPT_MTBF", v);
  return o;
}

} // namespace ckpt
