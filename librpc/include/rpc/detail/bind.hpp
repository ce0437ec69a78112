// Internal: turning a C++ callable into a zerorpc method. Included by server.hpp.
#pragma once

#include <functional>
#include <stop_token>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include <duct/buffer.hpp>
#include <duct/codec.hpp>
#include <duct/msgpack.hpp>
#include <rpc/error.hpp>

namespace rpc::detail {

template <class T>
struct callable_traits : callable_traits<decltype(&T::operator())> {};
template <class R, class... A>
struct callable_traits<R (*)(A...)> {
  using result = R;
  using args = std::tuple<std::decay_t<A>...>;
  static constexpr std::size_t arity = sizeof...(A);
};
template <class R, class... A>
struct callable_traits<R(A...)> : callable_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...)> : callable_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...) const> : callable_traits<R (*)(A...)> {};

/// A method as the server runs it: positional args and the call's stop token in, the packed result out.
/// Throws remote_error for the ERR.
using handler = std::function<duct::buffer(const msgpack::object& args, std::stop_token stop)>;

/// Whether a callable's parameters start with std::stop_token (the call's cancellation), which is not an argument
/// on the wire.
template <class Args>
constexpr bool takes_stop_token() {
  if constexpr (std::tuple_size_v<Args> == 0) return false;
  else return std::is_same_v<std::tuple_element_t<0, Args>, std::stop_token>;
}

/// The number of arguments a callable takes on the wire.
template <class F>
constexpr std::size_t wire_arity() {
  using traits = callable_traits<std::decay_t<F>>;
  return traits::arity - (takes_stop_token<typename traits::args>() ? 1 : 0);
}

/// A short name for what a C++ parameter wants, for TypeError messages.
template <class T>
std::string wanted_type() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_integral_v<T>) return "int";
  else if constexpr (std::is_floating_point_v<T>) return "float";
  else if constexpr (std::is_convertible_v<T, std::string_view>) return "str";
  else return "a value of another shape";
}

// Converts wire argument I into slot I + Offset of `out` (Offset 1 skips a leading stop token).
template <std::size_t Offset, class Tuple, std::size_t... I>
void convert_args(const std::string& method, const msgpack::object& args, Tuple& out, std::index_sequence<I...>) {
  [[maybe_unused]] auto one = [&](auto& slot, std::size_t index) {  // unused for methods without arguments
    const msgpack::object& o = args.via.array.ptr[index];
    try {
      o.convert(slot);
    } catch (const msgpack::type_error&) {
      throw remote_error("TypeError", method + "() argument " + std::to_string(index + 1) + " must be " +
                                          wanted_type<std::decay_t<decltype(slot)>>() + ", not " +
                                          duct::value::type_name(o));
    }
  };
  (one(std::get<I + Offset>(out), I), ...);
}

template <class F>
handler make_handler(std::string method, F f) {
  using traits = callable_traits<std::decay_t<F>>;
  constexpr bool stoppable = takes_stop_token<typename traits::args>();
  constexpr std::size_t arity = wire_arity<F>();
  return [method = std::move(method), f = std::move(f)](const msgpack::object& args,
                                                        std::stop_token stop) mutable -> duct::buffer {
    if (args.type != msgpack::type::ARRAY)
      throw remote_error("TypeError", method + "() arguments must be an array, not " + duct::value::type_name(args));
    if (args.via.array.size != arity) {
      throw remote_error("TypeError", method + "() takes " + std::to_string(arity) + " argument" +
                                          (arity == 1 ? "" : "s") + " but " + std::to_string(args.via.array.size) +
                                          " were given");
    }
    typename traits::args values;
    if constexpr (stoppable) std::get<0>(values) = std::move(stop);
    convert_args<stoppable ? 1 : 0>(method, args, values, std::make_index_sequence<arity>{});
    duct::pack_buffer out;
    if constexpr (std::is_void_v<typename traits::result>) {
      std::apply(f, std::move(values));
      msgpack::pack(out, msgpack::type::nil_t());
    } else {
      msgpack::pack(out, std::apply(f, std::move(values)));
    }
    return duct::buffer(std::as_bytes(std::span(out.data(), out.size())));
  };
}

}  // namespace rpc::detail
