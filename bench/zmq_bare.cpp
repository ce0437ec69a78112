// The baseline for rpc-call's start-up time: a program that only creates a ZeroMQ context and a socket, then exits.
#include <zmq.hpp>

int main() {
  zmq::context_t ctx;
  zmq::socket_t socket(ctx, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
}
