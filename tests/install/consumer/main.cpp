#include <iostream>
#include <vector>

#include <duct/duct.hpp>

int main() {
  auto [a, b] = duct::pair();
  a.send(std::vector<int>{1, 2, 3});
  std::cout << "consumer got " << b.recv().to_json() << "\n";
}
