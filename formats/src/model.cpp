#include <ckpt/formats/model.hpp>

namespace ckpt {

const FieldInfo *CheckpointInfo::field(const std::string &name) const {
  for (const auto &f : fields)
    if (f.name == name)
      return &f;
  return nullptr;
}

} // namespace ckpt
