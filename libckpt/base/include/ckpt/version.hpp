#pragma once
/// \file
/// The version of the ckpt library.

namespace ckpt {

/// Library version, e.g. "0.1.0".
const char *library_version() noexcept;

} // namespace ckpt
