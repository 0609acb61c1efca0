#include "policy.hpp"

#include <algorithm>
#include <cmath>

namespace ckpt::detail {

void PolicyHistory::record_boundary(double t) {
  if (last_boundary >= 0) {
    const double it = t - last_boundary;
    iter_sum += it;
    iter_max = std::max(iter_max, it);
    ++iter_count;
  }
}

void PolicyHistory::record_save(double seconds, double blocked) {
  ++saves;
  max_save = std::max(max_save, seconds);
  max_blocked = std::max(max_blocked, blocked);
}

double estimated_save_seconds(const PolicyHistory &h) {
  if (h.saves > 0)
    return h.max_save;
  return double(h.state_bytes) / 100e6;
}

double auto_interval(const Options &o, const PolicyHistory &h) {
  // sqrt(2CM) * (1 + sqrt(C/2M)/3 + (C/2M)/9) - C for C < 2M, else M (Young's sqrt(2CM) is
  // its first term).
  double c = h.saves > 0 ? (o.mode == Mode::async && h.max_blocked > 0 ? h.max_blocked : h.max_save)
                         : estimated_save_seconds(h);
  c = std::max(c, 1e-3);
  const double m = o.mtbf_seconds;
  if (c >= 2 * m)
    return m;
  const double x = c / (2 * m);
  return std::sqrt(2 * c * m) * (1 + std::sqrt(x) / 3 + x / 9) - c;
}

double time_limit_margin(const Options &o, const PolicyHistory &h) {
  if (o.margin_seconds > 0)
    return o.margin_seconds;
  const double flush = !h.flushes ? 0.0 : h.max_flush > 0 ? h.max_flush : double(h.state_bytes) / 100e6;
  return 5.0 + 2.0 * (estimated_save_seconds(h) + flush) + 2.0 * h.iter_max;
}

std::int64_t agreement_distance(const Options &o, const PolicyHistory &h, double end_time) {
  if (!(o.agree_seconds > 0) || h.iter_count == 0)
    return 1;
  const double step = h.iter_sum / double(h.iter_count);
  double period = o.agree_seconds;
  if (o.seconds > 0)
    period = std::min(period, 0.1 * o.seconds);
  if (o.every_auto)
    period = std::min(period, 0.1 * auto_interval(o, h));
  double d = step > 0 ? period / step : double(max_agreement_distance);
  if (!std::isnan(end_time) && h.iter_max > 0)
    d = std::min(d, 0.1 * time_limit_margin(o, h) / h.iter_max);
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::min(d, double(max_agreement_distance))), 1,
                                  max_agreement_distance);
}

int stop_flags(int stop_signal) {
  if (stop_signal > 0)
    return flag_signal;
  if (stop_signal < 0)
    return flag_requested;
  return 0;
}

int clock_flags(const Options &o, const PolicyHistory &h, double t, double wall, double end_time) {
  int flags = 0;
  const double since = t - h.last_checkpoint;
  if (o.seconds > 0 && since >= o.seconds)
    flags |= flag_time_due;
  if (o.every_auto && since >= auto_interval(o, h))
    flags |= flag_time_due;
  if (!std::isnan(end_time) && end_time - wall < time_limit_margin(o, h))
    flags |= flag_time_limit;
  return flags;
}

Decision decide(const Options &o, std::int64_t step, int agreed, std::int64_t saved_step, StopReason stopped) {
  Decision d{o.every > 0 && step % o.every == 0, stopped};
  if (agreed & (flag_signal | flag_time_limit | flag_requested)) {
    d.stop = (agreed & flag_signal)       ? StopReason::signal
             : (agreed & flag_time_limit) ? StopReason::time_limit
                                          : StopReason::requested;
    d.save = true;
  }
  if (agreed & flag_time_due)
    d.save = true;
  if (d.save && saved_step == step)
    d.save = false; // already saved at this step
  if (d.stop != StopReason::none && d.stop != StopReason::finished)
    d.save = true;  // the stop path saves (after_step skips a step already saved)
  return d;
}

} // namespace ckpt::detail
