#include "stores/etcd/http_client.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "stores/etcd/curl_lib.h"

namespace flannel::etcd {

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kMaxIdleConns = 8;
constexpr long kMaxRedirects = 10;      // as the Go client
constexpr long kKeepAliveSeconds = 30;  // as the Go client's dialer
// Hard cap on a response body; a lease list of 100k leases is ~10 MB.
constexpr size_t kMaxBody = 256u << 20;

// libcurl, loaded (and globally initialised) on first use: stores/etcd/curl_lib.h.
const CurlLib& curl() { return curl_lib(); }

struct EasyDeleter {
  void operator()(CURL* e) const { curl().easy_cleanup(e); }
};
struct MultiDeleter {
  void operator()(CURLM* m) const { curl().multi_cleanup(m); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl().slist_free_all(l); }
};

// Adds an easy handle to a multi handle for the lifetime of one transfer. Removing an unfinished
// transfer closes its connection, which is what aborting a long-poll needs.
class Attach {
 public:
  Attach(CURLM* m, CURL* e) : m_(m), e_(e) { added_ = curl().multi_add_handle(m_, e_) == CURLM_OK; }
  ~Attach() {
    if (added_) curl().multi_remove_handle(m_, e_);
  }
  Attach(const Attach&) = delete;
  Attach& operator=(const Attach&) = delete;
  bool ok() const { return added_; }

 private:
  CURLM* m_;
  CURL* e_;
  bool added_ = false;
};

struct Sink {
  const std::function<bool(std::string_view)>* stream_done = nullptr;  // may be null
  bool stream_stopped = false;  // stream_done said enough: the write error is ours
  std::string body;
  std::optional<uint64_t> etcd_index;
  std::string cluster_id;                             // X-Etcd-Cluster-Id
  std::optional<SteadyClock::time_point> headers_at;  // end of the last header block
  bool too_big = false;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t len = size * n;
  if (sink->body.size() + len > kMaxBody) {
    sink->too_big = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  sink->body.append(data, len);
  if (sink->stream_done && *sink->stream_done && (*sink->stream_done)(sink->body)) {
    sink->stream_stopped = true;
    return 0;  // ends the transfer (CURLE_WRITE_ERROR), reported as a complete response
  }
  return len;
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    // A new response (after a redirect or a 100 Continue): forget the previous one's headers.
    sink->etcd_index.reset();
    sink->cluster_id.clear();
    sink->headers_at.reset();
    sink->body.clear();
  } else if (line == "\r\n" || line == "\n") {
    sink->headers_at = SteadyClock::now();
  } else if (starts_with_nocase(line, "X-Etcd-Index:")) {
    std::string_view v = line.substr(13);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    uint64_t idx = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), idx);
    if (ec == std::errc() && p != v.data()) sink->etcd_index = idx;
  } else if (starts_with_nocase(line, "X-Etcd-Cluster-Id:")) {
    std::string_view v = line.substr(18);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
    sink->cluster_id = std::string(v);
  }
  return size * n;
}

// The etcd error text of an HTTP error body, or the start of the body when it is not etcd JSON.
std::string describe_error_body(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    std::string msg = j["message"].get<std::string>();
    if (j.contains("cause") && j["cause"].is_string() && !j["cause"].get<std::string>().empty()) {
      msg += " (" + j["cause"].get<std::string>() + ")";
    }
    return msg;
  }
  std::string text = body.substr(0, 200);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

void check_readable(const std::string& path, const char* what) {
  if (path.empty()) return;
  if (::access(path.c_str(), R_OK) != 0) {
    throw std::invalid_argument(std::string("etcd: cannot read ") + what + " '" + path + "'");
  }
}

}  // namespace

std::string url_escape(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

std::string escape_path(std::string_view path) {
  std::string out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    out += url_escape(path.substr(start, slash - start));
    if (slash < path.size()) out.push_back('/');
    start = slash + 1;
  }
  return out;
}

struct HttpClient::Conn {
  // Declared in this order so the easy handle is cleaned up before the multi handle.
  std::unique_ptr<CURLM, MultiDeleter> multi;
  std::unique_ptr<CURL, EasyDeleter> easy;
};

struct HttpClient::Attempt {
  enum class Kind { kResponse, kTransport, kTimeout, kCancelled } kind = Kind::kResponse;
  long status = 0;
  Sink sink;
  std::string error;          // kTransport: the problem, without the endpoint
  bool request_sent = false;  // kTransport: some bytes of the request went out
  bool headers_rejected = false;  // kTimeout: req.reject_headers ended the long-poll
};

HttpClient::HttpClient(EtcdOptions options) : options_(std::move(options)) {
  curl_lib();  // loads libcurl now: a missing library is an error of opening the store
  if (options_.endpoints.empty()) {
    throw std::invalid_argument("etcd: no endpoints given (-etcd-endpoints)");
  }
  for (const std::string& ep : options_.endpoints) {
    if (!(ep.starts_with("http://") || ep.starts_with("https://")) ||
        ep.find_first_of(" \t\r\n?#") != std::string::npos) {
      throw std::invalid_argument("etcd: endpoint '" + ep +
                                  "' is not a URL like http://127.0.0.1:2379 or "
                                  "https://10.0.0.1:2379");
    }
    std::string e = ep;
    while (e.size() > 1 && e.back() == '/') e.pop_back();
    endpoints_.push_back(std::move(e));
  }
  check_readable(options_.cafile, "CA file (-etcd-cafile)");
  check_readable(options_.certfile, "client certificate (-etcd-certfile)");
  check_readable(options_.keyfile, "client key (-etcd-keyfile)");
  if (options_.certfile.empty() != options_.keyfile.empty()) {
    throw std::invalid_argument("etcd: -etcd-certfile and -etcd-keyfile must be given together");
  }
  if (options_.dial_timeout.count() <= 0 || options_.request_timeout.count() <= 0) {
    throw std::invalid_argument("etcd: dial and request timeouts must be positive");
  }
}

HttpClient::~HttpClient() = default;

HttpClient::ConnPtr HttpClient::acquire() {
  {
    MutexLock lock(&pool_mu_);
    if (!pool_.empty()) {
      ConnPtr c = std::move(pool_.back());
      pool_.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<Conn>();
  c->multi.reset(curl().multi_init());
  c->easy.reset(curl().easy_init());
  if (!c->multi || !c->easy) throw std::runtime_error("etcd: libcurl handle allocation failed");
  return c;
}

void HttpClient::release(ConnPtr conn) {
  MutexLock lock(&pool_mu_);
  if (pool_.size() < kMaxIdleConns) pool_.push_back(std::move(conn));
}

HttpClient::Attempt HttpClient::attempt(Conn& conn, const std::string& endpoint,
                                        const HttpRequest& req, std::stop_token stop) {
  Attempt a;
  CURL* e = conn.easy.get();
  CURLM* m = conn.multi.get();
  curl().easy_reset(e);  // keeps the connection cache of `m`, drops every option

  std::string url = endpoint + req.path;
  if (!req.query.empty()) url += "?" + req.query;
  char errbuf[CURL_ERROR_SIZE] = {0};
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto add_header = [&headers](const char* h) {
    curl_slist* l = curl().slist_append(headers.get(), h);
    if (l) {
      (void)headers.release();
      headers.reset(l);
    }
  };

  curl().easy_setopt(e, CURLOPT_URL, url.c_str());
  curl().easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl().easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl().easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl().easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl().easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
  curl().easy_setopt(e, CURLOPT_MAXREDIRS, kMaxRedirects);
  curl().easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.dial_timeout.count()));
  curl().easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl().easy_setopt(e, CURLOPT_TCP_KEEPIDLE, kKeepAliveSeconds);
  curl().easy_setopt(e, CURLOPT_TCP_KEEPINTVL, kKeepAliveSeconds);
  curl().easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl().easy_setopt(e, CURLOPT_WRITEDATA, &a.sink);
  curl().easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl().easy_setopt(e, CURLOPT_HEADERDATA, &a.sink);
  curl().easy_setopt(e, CURLOPT_USERAGENT, "flannel-cpp");
  // HTTP/1.1 like the Go client of flannel v0.11 (no h2 with a custom TLS config).
  curl().easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  add_header("Expect:");  // never wait for 100-continue

  if (req.method == "GET") {
    curl().easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (req.method == "POST") {
    const std::string& body = req.json_body.empty() ? req.form_body : req.json_body;
    curl().easy_setopt(e, CURLOPT_POST, 1L);
    curl().easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl().easy_setopt(e, CURLOPT_POSTFIELDS, body.c_str());
    add_header(req.json_body.empty() ? "Content-Type: application/x-www-form-urlencoded"
                                     : "Content-Type: application/json");
  } else {
    curl().easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    if (!req.form_body.empty()) {
      curl().easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(req.form_body.size()));
      curl().easy_setopt(e, CURLOPT_POSTFIELDS, req.form_body.c_str());
      add_header("Content-Type: application/x-www-form-urlencoded");
    }
  }
  std::string auth_header;
  if (!req.authorization.empty()) {
    auth_header = "Authorization: " + req.authorization;
    add_header(auth_header.c_str());
  }
  curl().easy_setopt(e, CURLOPT_HTTPHEADER, headers.get());
  if (req.stream_done) a.sink.stream_done = &req.stream_done;
  if (req.one_shot) {
    // A fresh connection: libcurl silently resends a request once when a reused keep-alive
    // connection turns out dead, which for a compare-and-swap could replay an applied write.
    curl().easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
  }

  if (!options_.cafile.empty()) curl().easy_setopt(e, CURLOPT_CAINFO, options_.cafile.c_str());
  if (!options_.certfile.empty()) {
    curl().easy_setopt(e, CURLOPT_SSLCERT, options_.certfile.c_str());
    curl().easy_setopt(e, CURLOPT_SSLKEY, options_.keyfile.c_str());
    curl().easy_setopt(e, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  }
  if (req.basic_auth && !options_.username.empty()) {
    curl().easy_setopt(e, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl().easy_setopt(e, CURLOPT_USERNAME, options_.username.c_str());
    curl().easy_setopt(e, CURLOPT_PASSWORD, options_.password.c_str());
  }

  const bool long_poll = req.deadline.has_value();
  const auto start = SteadyClock::now();
  const auto deadline = long_poll ? *req.deadline : start + options_.request_timeout;
  // etcd answers a long-poll with its headers at once and only holds back the body; an endpoint
  // that sends no headers within request_timeout is hung, and the poll moves to the next one.
  const auto headers_deadline = start + options_.request_timeout;

  // The handle goes back to the pool holding pointers into this frame (error buffer, sink,
  // header list): clear them once the transfer is detached (declared before `attach`, so it
  // runs after the removal).
  struct ResetOnExit {
    CURL* e;
    ~ResetOnExit() { curl().easy_reset(e); }
  } reset_on_exit{e};
  Attach attach(m, e);
  if (!attach.ok()) {
    a.kind = Attempt::Kind::kTransport;
    a.error = "cannot start the transfer (libcurl)";
    return a;
  }
  // Wakes curl_multi_poll below from whichever thread requests the stop.
  std::stop_callback wake(stop, [m] { curl().multi_wakeup(m); });

  int running = 1;
  bool headers_judged = false;
  for (;;) {
    CURLMcode mc = curl().multi_perform(m, &running);
    if (mc != CURLM_OK) {
      a.kind = Attempt::Kind::kTransport;
      a.error = curl().multi_strerror(mc);
      return a;
    }
    if (running == 0) break;
    if (long_poll && req.reject_headers && a.sink.headers_at && !headers_judged) {
      headers_judged = true;
      if (req.reject_headers(a.sink.etcd_index, a.sink.cluster_id)) {
        a.kind = Attempt::Kind::kTimeout;
        a.headers_rejected = true;
        curl().easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a.status);
        return a;
      }
    }
    if (stop.stop_requested()) {
      a.kind = Attempt::Kind::kCancelled;
      return a;
    }
    auto now = SteadyClock::now();
    if (long_poll && now >= headers_deadline && now < deadline && !a.sink.headers_at) {
      a.kind = Attempt::Kind::kTransport;
      a.error =
          "no response headers within " + std::to_string(options_.request_timeout.count()) + " ms";
      a.request_sent = true;
      return a;
    }
    if (now >= deadline) {
      long sent = 0;
      curl().easy_getinfo(e, CURLINFO_REQUEST_SIZE, &sent);
      if (long_poll) {
        a.kind = Attempt::Kind::kTimeout;
        curl().easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a.status);  // 0 if no headers yet
      } else {
        a.kind = Attempt::Kind::kTransport;
        a.error = "no answer within " + std::to_string(options_.request_timeout.count()) + " ms";
        a.request_sent = sent > 0;
      }
      return a;
    }
    auto next = long_poll && !a.sink.headers_at ? std::min(deadline, headers_deadline) : deadline;
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
    wait = std::clamp<long long>(wait, 1, 1000);
    mc = curl().multi_poll(m, nullptr, 0, static_cast<int>(wait), nullptr);
    if (mc != CURLM_OK) {
      a.kind = Attempt::Kind::kTransport;
      a.error = curl().multi_strerror(mc);
      return a;
    }
  }

  CURLcode rc = CURLE_OK;
  int left = 0;
  while (CURLMsg* msg = curl().multi_info_read(m, &left)) {
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == e) rc = msg->data.result;
  }
  if (rc == CURLE_WRITE_ERROR && a.sink.stream_stopped) rc = CURLE_OK;  // we ended the stream
  if (rc != CURLE_OK) {
    long sent = 0;
    curl().easy_getinfo(e, CURLINFO_REQUEST_SIZE, &sent);
    a.kind = Attempt::Kind::kTransport;
    a.request_sent = sent > 0;
    if (a.sink.too_big) {
      a.error = "response larger than " + std::to_string(kMaxBody >> 20) + " MB";
    } else {
      a.error = errbuf[0] ? std::string(errbuf) : std::string(curl().easy_strerror(rc));
      while (!a.error.empty() && (a.error.back() == '\n' || a.error.back() == '\r')) {
        a.error.pop_back();
      }
      if (rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_RECV_ERROR ||
          rc == CURLE_SEND_ERROR) {
        if (endpoint.starts_with("https://") && options_.certfile.empty()) {
          a.error +=
              " (the server may require a client certificate; none is configured: "
              "-etcd-certfile/-etcd-keyfile)";
        }
      }
    }
    return a;
  }
  curl().easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a.status);
  a.kind = Attempt::Kind::kResponse;
  return a;
}

HttpResponse HttpClient::send(const HttpRequest& req, std::stop_token stop) {
  HttpResponse resp;
  if (stop.stop_requested()) {
    resp.outcome = HttpResponse::Outcome::kCancelled;
    return resp;
  }
  ConnPtr conn = acquire();
  const size_t n = endpoints_.size();
  const size_t start = pinned_.load(std::memory_order_relaxed) % n;
  std::vector<std::string> errors;

  for (size_t i = 0; i < n; ++i) {
    const size_t idx = (start + i) % n;
    const std::string& ep = endpoints_[idx];
    resp.endpoint = ep;
    if (req.deadline && SteadyClock::now() >= *req.deadline) {
      resp.outcome = HttpResponse::Outcome::kTimeout;
      break;
    }
    const auto attempt_start = SteadyClock::now();
    Attempt a = attempt(*conn, ep, req, stop);
    if (a.kind == Attempt::Kind::kCancelled) {
      resp.outcome = HttpResponse::Outcome::kCancelled;
      break;
    }
    if (a.kind == Attempt::Kind::kTimeout) {
      if (!a.sink.headers_at && SteadyClock::now() - attempt_start >= options_.dial_timeout) {
        // A long-poll that got no headers at all in that time suggests a hung endpoint: let
        // the next request start at the following one (which fails over back if need be).
        size_t expected = idx;
        pinned_.compare_exchange_strong(expected, (idx + 1) % n, std::memory_order_relaxed);
      }
      resp.outcome = HttpResponse::Outcome::kTimeout;
      resp.headers_rejected = a.headers_rejected;
      resp.status = a.status;  // headers of a long-poll that had not finished, if any
      resp.etcd_index = a.sink.etcd_index;
      resp.cluster_id = std::move(a.sink.cluster_id);
      resp.headers_at = a.sink.headers_at;
      resp.body = std::move(a.sink.body);
      break;
    }
    if (a.kind == Attempt::Kind::kResponse && a.status < 500) {
      pinned_.store(idx, std::memory_order_relaxed);
      resp.outcome = HttpResponse::Outcome::kOk;
      resp.status = a.status;
      resp.body = std::move(a.sink.body);
      resp.etcd_index = a.sink.etcd_index;
      resp.cluster_id = std::move(a.sink.cluster_id);
      break;
    }
    // A transport failure or a server error: note it, and decide whether another endpoint may
    // see the same request.
    std::string problem =
        a.kind == Attempt::Kind::kResponse
            ? "HTTP " + std::to_string(a.status) + ": " + describe_error_body(a.sink.body)
            : a.error;
    bool maybe_applied = a.kind == Attempt::Kind::kResponse || a.request_sent;
    if (req.one_shot && maybe_applied) {
      errors.push_back("etcd " + ep + ": " + problem +
                       " (the request may have been applied; not retried on another endpoint)");
      resp.outcome = HttpResponse::Outcome::kTransport;
      break;
    }
    errors.push_back("etcd " + ep + ": " + problem);
    resp.outcome = HttpResponse::Outcome::kTransport;
  }

  if (resp.outcome == HttpResponse::Outcome::kTransport) {
    for (size_t i = 0; i < errors.size(); ++i) {
      if (i) resp.error += "; ";
      resp.error += errors[i];
    }
  }
  release(std::move(conn));
  return resp;
}

}  // namespace flannel::etcd
