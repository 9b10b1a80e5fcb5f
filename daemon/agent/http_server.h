// A tiny HTTP/1.0-style server for /healthz, /readyz and /metrics. None of the project's
// allowed libraries serves HTTP (libcurl is a client), and these endpoints need only GET of a
// path with a short text answer, so this is deliberately minimal: one thread, one request per
// connection, a 2 s read deadline per client, bounded request size.
#pragma once

#include <functional>
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

  // Binds and listens on ip:port (port 0 picks a free one; see port()), then starts the one
  // serving thread. Throws std::runtime_error "healthz: cannot listen on IP:PORT: reason" (or
  // for an `ip` that is not IPv4). `handler` is kept and called on that thread, one request at a
  // time, until the destructor returns: what it reads must be safe to read from there and
  // outlive the server. It must not throw: an exception ends the process (std::terminate).
  HttpServer(const std::string& ip, int port, Handler handler);
  ~HttpServer();  // stops the thread and closes the socket
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }

 private:
  void run();
  void serve_one(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: written to stop the loop
  int port_ = 0;
  std::thread thread_;
};

}  // namespace flannel
