// A tiny HTTP/1.0-style server for /healthz, /readyz and /metrics. None of the project's
// allowed libraries serves HTTP (libcurl is a client), and these endpoints need only GET of a
// path with a short text answer, so this is deliberately minimal: one request per connection,
// bounded request size, and a 2 s deadline per connection. One thread serves every connection at
// once (poll over all of them), so idle or slow clients never hold up a liveness probe; at most
// kMaxConnections are open at a time (further clients wait in the listen backlog).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <thread>

namespace flannel {

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const std::string& method, const std::string& path)>;
  static constexpr size_t kMaxConnections = 256;
  static constexpr std::chrono::seconds kConnectionDeadline{2};

  // Binds and listens on ip:port, ip an IPv4 or IPv6 address (port 0 picks a free one; see
  // port()), then starts the one serving thread. Throws std::runtime_error "healthz: cannot
  // listen on IP:PORT: reason" (or naming an `ip` that is not an IP address). `handler` is kept
  // and called on that thread, one request at a time, until the destructor returns: what it
  // reads must be safe to read from there and outlive the server. An exception from it is
  // answered 500 with its message.
  HttpServer(const std::string& ip, int port, Handler handler);
  ~HttpServer();  // stops the thread, closes the socket and every open connection
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }

 private:
  struct Connection {
    std::string in;   // the request so far
    std::string out;  // the response, once the request is complete
    size_t sent = 0;
    std::chrono::steady_clock::time_point deadline;
  };

  void run();
  void accept_all();
  // Reads or writes what `fd` is ready for; false when the connection is done (close it).
  bool on_ready(int fd, Connection& c);
  std::string respond(const std::string& request) const;
  int poll_timeout_ms() const;

  Handler handler_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: written to stop the loop
  int port_ = 0;
  std::map<int, Connection> connections_;  // the server thread's only (then the destructor's)
  std::thread thread_;
};

}  // namespace flannel
