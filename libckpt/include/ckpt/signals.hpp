#pragma once
/// \file
/// ckpt's stop signals, for code that manages Checkpointer objects itself (language
/// bindings, custom loops). Most applications never need this header: a Checkpointer
/// installs and removes the handlers on its own.

#include <vector>

namespace ckpt {

/// Keeps ckpt's flag-only handlers for `signals` installed while it lives. Handlers are
/// reference counted together with those of Checkpointers, so holding a StopSignals across
/// the replacement of one Checkpointer by another leaves no moment in which a stop signal
/// would take its default action (terminate the process). Local.
class StopSignals {
public:
  explicit StopSignals(const std::vector<int> &signals);
  ~StopSignals();
  StopSignals(const StopSignals &) = delete;
  StopSignals &operator=(const StopSignals &) = delete;

private:
  bool installed_ = false;
};

/// Forgets a stop that was requested (by a signal or request_stop()) after it was acted on,
/// so that a later loop does not stop at once. Local, async-signal-safe.
void clear_stop_request() noexcept;

} // namespace ckpt
