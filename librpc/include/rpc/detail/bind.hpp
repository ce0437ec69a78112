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
#include <rpc/stream.hpp>

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

/// What a handler gets besides its wire arguments: the call's cancellation, and for a streaming method its sink,
/// for a reporting one its progress, for one that reads a chunked request its source.
struct call_context {
  std::stop_token stop;
  sink* out = nullptr;
  progress* report = nullptr;
  source* in = nullptr;
  /// Who called, for logs: the client's address as ZeroMQ reports it ("127.0.0.1" over tcp://, over ipc://
  /// "localhost:UID:GID:PID" of the client process), "duct:NAME" over a link. Empty for a run_on::receiver method,
  /// and for one bound with server::shape::peer false (every bind() but bind_raw()'s, whose handlers cannot see
  /// it) when its call runs where it arrived.
  std::string peer;
};

/// A method as the server runs it: positional args and the call's context in, the packed result out (nil for a
/// stream). Throws remote_error for the ERR.
using handler = std::function<duct::buffer(const msgpack::object& args, call_context& ctx)>;

/// Whether a callable's parameter I is of type T (std::stop_token, rpc::sink&, rpc::progress&, rpc::source&), which
/// is not an argument on the wire.
template <class Args, class T, std::size_t I = 0>
constexpr bool param_is() {
  if constexpr (std::tuple_size_v<Args> <= I) return false;
  else return std::is_same_v<std::tuple_element_t<I, Args>, T>;
}
template <class Args, class T>
constexpr bool first_is() {
  return param_is<Args, T, 0>();
}
template <class F>
constexpr bool takes_stop_token() {
  return first_is<typename callable_traits<std::decay_t<F>>::args, std::stop_token>();
}
/// Whether a callable reads a chunked request: its first parameter is rpc::source&.
template <class F>
constexpr bool reads_input() {
  return first_is<typename callable_traits<std::decay_t<F>>::args, source>();
}
/// Whether a callable streams both ways: (rpc::source&, rpc::sink&, ...).
template <class F>
constexpr bool duplex() {
  return reads_input<F>() && param_is<typename callable_traits<std::decay_t<F>>::args, sink, 1>();
}
/// Whether a callable streams its reply: its first parameter is rpc::sink& (or its second, after rpc::source&).
template <class F>
constexpr bool streams() {
  return first_is<typename callable_traits<std::decay_t<F>>::args, sink>() || duplex<F>();
}

/// Whether a callable reports progress: its first parameter is rpc::progress&.
template <class F>
constexpr bool reports_progress() {
  return first_is<typename callable_traits<std::decay_t<F>>::args, progress>();
}

/// How many of a callable's first parameters are its context rather than arguments on the wire.
template <class F>
constexpr std::size_t context_params() {
  if constexpr (duplex<F>()) return 2;
  else return takes_stop_token<F>() || streams<F>() || reports_progress<F>() || reads_input<F>() ? 1 : 0;
}

/// The number of arguments a callable takes on the wire.
template <class F>
constexpr std::size_t wire_arity() {
  return callable_traits<std::decay_t<F>>::arity - context_params<F>();
}

/// The progress of a call whose caller did not ask for it: reports go nowhere.
class silent_progress final : public progress {
 public:
  explicit silent_progress(std::stop_token stop) : stop_(std::move(stop)) {}
  void report_packed(std::span<const std::byte>) override {}
  [[nodiscard]] bool wanted() const override { return false; }
  [[nodiscard]] std::stop_token stop_token() const override { return stop_; }

 private:
  std::stop_token stop_;
};

/// The tuple T without its first N elements.
template <std::size_t N, class T, class Seq = std::make_index_sequence<std::tuple_size_v<T> - N>>
struct drop_front;
template <std::size_t N, class T, std::size_t... I>
struct drop_front<N, T, std::index_sequence<I...>> {
  using type = std::tuple<std::tuple_element_t<I + N, T>...>;
};

/// A short name for what a C++ parameter wants, for TypeError messages.
template <class T>
std::string wanted_type() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_integral_v<T>) return "int";
  else if constexpr (std::is_floating_point_v<T>) return "float";
  else if constexpr (std::is_convertible_v<T, std::string_view>) return "str";
  else return "a value of another shape";
}

// Converts wire argument I into slot I of `out`.
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
  constexpr bool stoppable = takes_stop_token<F>();
  constexpr bool streaming = streams<F>();
  constexpr bool reporting = reports_progress<F>();
  constexpr bool reading = reads_input<F>();
  constexpr bool both = duplex<F>();
  constexpr std::size_t arity = wire_arity<F>();
  static_assert(!streaming || std::is_void_v<typename traits::result>,
                "a streaming handler (with an rpc::sink& parameter) returns void: its items go to the sink");
  return [method = std::move(method), f = std::move(f)](const msgpack::object& args,
                                                        call_context& ctx) mutable -> duct::buffer {
    if (args.type != msgpack::type::ARRAY)
      throw remote_error("TypeError", method + "() arguments must be an array, not " + duct::value::type_name(args));
    if (args.via.array.size != arity) {
      throw remote_error("TypeError", method + "() takes " + std::to_string(arity) + " argument" +
                                          (arity == 1 ? "" : "s") + " but " + std::to_string(args.via.array.size) +
                                          " were given");
    }
    typename drop_front<context_params<F>(), typename traits::args>::type values;
    convert_args(method, args, values, std::make_index_sequence<arity>{});
    auto run = [&] {
      return std::apply(
          [&](auto&&... a) {
            if constexpr (stoppable) return f(ctx.stop, std::move(a)...);
            else if constexpr (both) return f(*ctx.in, *ctx.out, std::move(a)...);
            else if constexpr (reading) return f(*ctx.in, std::move(a)...);
            else if constexpr (streaming) return f(*ctx.out, std::move(a)...);
            else if constexpr (reporting) {
              if (ctx.report) return f(*ctx.report, std::move(a)...);
              silent_progress quiet(ctx.stop);  // for a caller that asked for no progress
              return f(quiet, std::move(a)...);
            }
            else return f(std::move(a)...);
          },
          std::move(values));
    };
    duct::pack_buffer out;
    if constexpr (std::is_void_v<typename traits::result>) {
      run();
      msgpack::pack(out, msgpack::type::nil_t());
    } else {
      msgpack::pack(out, run());
    }
    return out.take();
  };
}

}  // namespace rpc::detail
