// rpc::group: a call on every member, each outcome kept. See group.hpp.
#include <rpc/group.hpp>

namespace rpc {

std::string outcome::message() const {
  if (!error) return {};
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an error that is not a std::exception";
  }
}

std::vector<outcome> group::collect(std::vector<future>& pending) {
  std::vector<outcome> out;
  out.reserve(pending.size());
  for (std::size_t i = 0; i < pending.size(); ++i) {
    outcome o{members_[i]->endpoint(), std::nullopt, nullptr};
    try {
      o.result = pending[i].get();
    } catch (...) {
      o.error = std::current_exception();
    }
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace rpc
