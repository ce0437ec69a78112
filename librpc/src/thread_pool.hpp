// Internal: a fixed pool of threads running jobs in order of submission.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rpc::detail {

class thread_pool {
 public:
  explicit thread_pool(std::size_t threads);
  /// Finishes the running jobs, drops the queued ones, joins the threads.
  ~thread_pool();
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  void submit(std::function<void()> job);

 private:
  void work();
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace rpc::detail
