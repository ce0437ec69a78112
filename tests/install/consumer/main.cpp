#include <iostream>
#include <vector>

#include <duct/duct.hpp>
#include <rpc/event.hpp>

int main() {
  auto [a, b] = duct::pair();
  a.send(std::vector<int>{1, 2, 3});
  rpc::id_generator ids;
  duct::buffer body = rpc::encode_event({ids.next()}, "add", std::make_tuple(1, 2));
  rpc::event e = rpc::decode_event(body.span());
  // Both versions: the headers' and the loaded library's. They differ if the consumer ran against another build.
  std::cout << "consumer got " << b.recv().to_json() << " and " << e.name << " from " << DUCTRPC_VERSION << "/"
            << duct::version() << "\n";
}
