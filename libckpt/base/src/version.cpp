#include <ckpt/version.hpp>

namespace ckpt {

const char *library_version() noexcept { return CKPT_VERSION_STRING; }

} // namespace ckpt
