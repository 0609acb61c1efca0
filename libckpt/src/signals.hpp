#pragma once
// Stop signals: the handlers only set a flag; the Checkpointer polls it at step boundaries.

#include <csignal>
#include <vector>

namespace ckpt::detail {

/// Installs the flag-setting handler for `signals` (reference counted across
/// Checkpointers; the previous handlers come back when the last one uninstalls, unless a
/// stop signal arrived: then ckpt's handlers stay, so that a late copy of it cannot kill a
/// process that already checkpointed).
void install_stop_handlers(const std::vector<int> &signals);
void uninstall_stop_handlers();

/// The signal number that requested a stop, or 0. Async-signal-safe.
int stop_signal() noexcept;
/// Sets the flag as a handler would (request_stop()).
void raise_stop_flag(int signo) noexcept;
/// Clears the flag after the stop was acted on.
void clear_stop_flag() noexcept;

/// "USR1" -> SIGUSR1; also accepts "SIGUSR1" and numbers. Returns 0 when unknown.
int parse_signal(const char *name);

} // namespace ckpt::detail
