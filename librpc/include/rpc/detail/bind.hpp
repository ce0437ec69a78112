// Internal: turning a C++ callable into a zerorpc method. Included by server.hpp.
#pragma once

#include <functional>
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

/// A method as the server runs it: positional args in, the packed result out. Throws remote_error for the ERR.
using handler = std::function<duct::buffer(const msgpack::object& args)>;

/// A short name for what a C++ parameter wants, for TypeError messages.
template <class T>
std::string wanted_type() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_integral_v<T>) return "int";
  else if constexpr (std::is_floating_point_v<T>) return "float";
  else if constexpr (std::is_convertible_v<T, std::string_view>) return "str";
  else return "a value of another shape";
}

template <class Tuple, std::size_t... I>
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
  (one(std::get<I>(out), I), ...);
}

template <class F>
handler make_handler(std::string method, F f) {
  using traits = callable_traits<std::decay_t<F>>;
  return [method = std::move(method), f = std::move(f)](const msgpack::object& args) mutable -> duct::buffer {
    if (args.type != msgpack::type::ARRAY)
      throw remote_error("TypeError", method + "() arguments must be an array, not " + duct::value::type_name(args));
    if (args.via.array.size != traits::arity) {
      throw remote_error("TypeError", method + "() takes " + std::to_string(traits::arity) + " argument" +
                                          (traits::arity == 1 ? "" : "s") + " but " +
                                          std::to_string(args.via.array.size) + " were given");
    }
    typename traits::args values;
    convert_args(method, args, values, std::make_index_sequence<traits::arity>{});
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
