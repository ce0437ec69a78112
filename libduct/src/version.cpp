// The library's own version, compiled in, so that a program can tell which build it was loaded with.
#include <duct/version.hpp>

namespace duct {

const char* version() noexcept { return DUCTRPC_VERSION; }

}  // namespace duct
