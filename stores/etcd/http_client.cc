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
  size_t max_body = 0;                                // EtcdOptions::max_response_bytes
  bool too_big = false;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t len = size * n;
  if (sink->body.size() + len > sink->max_body) {
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
  std::string error;              // kTransport: the problem, without the endpoint
  bool request_sent = false;      // kTransport: some bytes of the request went out
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

// One attempt's libcurl transfer on a pooled handle: the options it sets, the loop that drives
// it to a response, a timeout or a stop, and the reading of its outcome into *a. Lives on the
// stack of attempt(), declared before the handle is attached: libcurl holds pointers into it
// (error buffer, header list) and into a->sink until the handle is detached and reset.
class HttpClient::Transfer {
 public:
  Transfer(const HttpClient& client, Conn& conn, const std::string& endpoint,
           const HttpRequest& req, Attempt* a)
      : options_(client.options_),
        e_(conn.easy.get()),
        m_(conn.multi.get()),
        endpoint_(endpoint),
        req_(req),
        a_(a) {}
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  void set_connection_options();
  void set_method();
  void set_tls_and_auth();
  void start_clock();
  bool drive(const std::stop_token& stop);
  void read_result();

 private:
  void add_header(const char* h);
  bool failed(CURLMcode mc);
  bool headers_rejected();
  bool timed_out(SteadyClock::time_point now);
  int wait_ms(SteadyClock::time_point now) const;
  std::string describe_failure(CURLcode rc) const;

  const EtcdOptions& options_;
  CURL* const e_;
  CURLM* const m_;
  const std::string& endpoint_;
  const HttpRequest& req_;
  Attempt* const a_;
  std::string url_;
  char errbuf_[CURL_ERROR_SIZE] = {0};
  std::unique_ptr<curl_slist, SlistDeleter> headers_;
  bool long_poll_ = false;
  SteadyClock::time_point deadline_;
  SteadyClock::time_point headers_deadline_;
  bool headers_judged_ = false;  // req.reject_headers was asked (once per attempt)
};

HttpClient::Attempt HttpClient::attempt(Conn& conn, const std::string& endpoint,
                                        const HttpRequest& req, std::stop_token stop) {
  Attempt a;
  CURL* e = conn.easy.get();
  CURLM* m = conn.multi.get();
  curl().easy_reset(e);  // keeps the connection cache of `m`, drops every option
  Transfer t(*this, conn, endpoint, req, &a);
  t.set_connection_options();
  t.set_method();
  t.set_tls_and_auth();
  t.start_clock();

  // The handle goes back to the pool holding pointers into `t` and `a` (error buffer, sink,
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
  // Wakes curl_multi_poll in drive() from whichever thread requests the stop.
  std::stop_callback wake(stop, [m] { curl().multi_wakeup(m); });
  if (t.drive(stop)) t.read_result();
  return a;
}

// Appends to the request's header list (libcurl copies the text).
void HttpClient::Transfer::add_header(const char* h) {
  curl_slist* l = curl().slist_append(headers_.get(), h);
  if (l) {
    (void)headers_.release();
    headers_.reset(l);
  }
}

// What every request shares: URL, callbacks into a_->sink, connect timeout, TCP keep-alive.
void HttpClient::Transfer::set_connection_options() {
  url_ = endpoint_ + req_.path;
  if (!req_.query.empty()) url_ += "?" + req_.query;
  curl().easy_setopt(e_, CURLOPT_URL, url_.c_str());
  curl().easy_setopt(e_, CURLOPT_NOSIGNAL, 1L);
  curl().easy_setopt(e_, CURLOPT_ERRORBUFFER, errbuf_);
  curl().easy_setopt(e_, CURLOPT_PROTOCOLS_STR, "http,https");
  // A redirect never downgrades: from an https endpoint only to https (the credentials and the
  // leases would otherwise cross the network in clear text).
  curl().easy_setopt(e_, CURLOPT_REDIR_PROTOCOLS_STR,
                     endpoint_.starts_with("https://") ? "https" : "http,https");
  curl().easy_setopt(e_, CURLOPT_FOLLOWLOCATION, 1L);
  curl().easy_setopt(e_, CURLOPT_MAXREDIRS, kMaxRedirects);
  curl().easy_setopt(e_, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options_.dial_timeout.count()));
  curl().easy_setopt(e_, CURLOPT_TCP_KEEPALIVE, 1L);
  curl().easy_setopt(e_, CURLOPT_TCP_KEEPIDLE, kKeepAliveSeconds);
  curl().easy_setopt(e_, CURLOPT_TCP_KEEPINTVL, kKeepAliveSeconds);
  curl().easy_setopt(e_, CURLOPT_WRITEFUNCTION, on_body);
  curl().easy_setopt(e_, CURLOPT_WRITEDATA, &a_->sink);
  curl().easy_setopt(e_, CURLOPT_HEADERFUNCTION, on_header);
  curl().easy_setopt(e_, CURLOPT_HEADERDATA, &a_->sink);
  curl().easy_setopt(e_, CURLOPT_USERAGENT, "flannel-cpp");
  // HTTP/1.1 like the Go client of flannel v0.11 (no h2 with a custom TLS config).
  curl().easy_setopt(e_, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  add_header("Expect:");  // never wait for 100-continue
}

// Method, body and headers. The bodies are not copied by libcurl: req_ outlives the transfer.
void HttpClient::Transfer::set_method() {
  if (req_.method == "GET") {
    curl().easy_setopt(e_, CURLOPT_HTTPGET, 1L);
  } else if (req_.method == "POST") {
    const std::string& body = req_.json_body.empty() ? req_.form_body : req_.json_body;
    curl().easy_setopt(e_, CURLOPT_POST, 1L);
    curl().easy_setopt(e_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl().easy_setopt(e_, CURLOPT_POSTFIELDS, body.c_str());
    add_header(req_.json_body.empty() ? "Content-Type: application/x-www-form-urlencoded"
                                      : "Content-Type: application/json");
  } else {
    curl().easy_setopt(e_, CURLOPT_CUSTOMREQUEST, req_.method.c_str());
    if (!req_.form_body.empty()) {
      curl().easy_setopt(e_, CURLOPT_POSTFIELDSIZE, static_cast<long>(req_.form_body.size()));
      curl().easy_setopt(e_, CURLOPT_POSTFIELDS, req_.form_body.c_str());
      add_header("Content-Type: application/x-www-form-urlencoded");
    }
  }
  if (!req_.authorization.empty()) {
    std::string auth_header = "Authorization: " + req_.authorization;
    add_header(auth_header.c_str());
  }
  curl().easy_setopt(e_, CURLOPT_HTTPHEADER, headers_.get());
  if (req_.stream_done) a_->sink.stream_done = &req_.stream_done;
  a_->sink.max_body = options_.max_response_bytes;
  if (req_.one_shot) {
    // A fresh connection: libcurl silently resends a request once when a reused keep-alive
    // connection turns out dead, which for a compare-and-swap could replay an applied write.
    curl().easy_setopt(e_, CURLOPT_FRESH_CONNECT, 1L);
  }
}

void HttpClient::Transfer::set_tls_and_auth() {
  if (!options_.cafile.empty()) curl().easy_setopt(e_, CURLOPT_CAINFO, options_.cafile.c_str());
  if (!options_.certfile.empty()) {
    curl().easy_setopt(e_, CURLOPT_SSLCERT, options_.certfile.c_str());
    curl().easy_setopt(e_, CURLOPT_SSLKEY, options_.keyfile.c_str());
    curl().easy_setopt(e_, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  }
  if (req_.basic_auth && !options_.username.empty()) {
    curl().easy_setopt(e_, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl().easy_setopt(e_, CURLOPT_USERNAME, options_.username.c_str());
    curl().easy_setopt(e_, CURLOPT_PASSWORD, options_.password.c_str());
  }
}

// The attempt's deadlines, from now.
void HttpClient::Transfer::start_clock() {
  long_poll_ = req_.deadline.has_value();
  const auto start = SteadyClock::now();
  deadline_ = long_poll_ ? *req_.deadline : start + options_.request_timeout;
  // etcd answers a long-poll with its headers at once and only holds back the body; an endpoint
  // that sends no headers within request_timeout is hung, and the poll moves to the next one.
  headers_deadline_ = start + options_.request_timeout;
}

// Runs the transfer until it completes (true) or ends early (false: *a_ says how: a libcurl
// failure, headers the caller rejected, a stop, or a deadline).
bool HttpClient::Transfer::drive(const std::stop_token& stop) {
  int running = 1;
  for (;;) {
    if (CURLMcode mc = curl().multi_perform(m_, &running); mc != CURLM_OK) return failed(mc);
    if (running == 0) return true;
    if (headers_rejected()) return false;
    if (stop.stop_requested()) {
      a_->kind = Attempt::Kind::kCancelled;
      return false;
    }
    auto now = SteadyClock::now();
    if (timed_out(now)) return false;
    if (CURLMcode mc = curl().multi_poll(m_, nullptr, 0, wait_ms(now), nullptr); mc != CURLM_OK)
      return failed(mc);
  }
}

bool HttpClient::Transfer::failed(CURLMcode mc) {
  a_->kind = Attempt::Kind::kTransport;
  a_->error = curl().multi_strerror(mc);
  return false;
}

// A long-poll's headers are shown to req.reject_headers once, as soon as they are complete; a
// rejection ends the poll as a timeout (see v2_reset.h).
bool HttpClient::Transfer::headers_rejected() {
  if (!long_poll_ || !req_.reject_headers || !a_->sink.headers_at || headers_judged_) return false;
  headers_judged_ = true;
  if (!req_.reject_headers(a_->sink.etcd_index, a_->sink.cluster_id)) return false;
  a_->kind = Attempt::Kind::kTimeout;
  a_->headers_rejected = true;
  curl().easy_getinfo(e_, CURLINFO_RESPONSE_CODE, &a_->status);
  return true;
}

// A long-poll without headers by headers_deadline_ is a hung endpoint (a transport failure, so
// send() fails over); past deadline_ a long-poll timed out (not an error) and anything else
// failed.
bool HttpClient::Transfer::timed_out(SteadyClock::time_point now) {
  if (long_poll_ && now >= headers_deadline_ && now < deadline_ && !a_->sink.headers_at) {
    a_->kind = Attempt::Kind::kTransport;
    a_->error =
        "no response headers within " + std::to_string(options_.request_timeout.count()) + " ms";
    a_->request_sent = true;
    return true;
  }
  if (now < deadline_) return false;
  long sent = 0;
  curl().easy_getinfo(e_, CURLINFO_REQUEST_SIZE, &sent);
  if (long_poll_) {
    a_->kind = Attempt::Kind::kTimeout;
    curl().easy_getinfo(e_, CURLINFO_RESPONSE_CODE, &a_->status);  // 0 if no headers yet
  } else {
    a_->kind = Attempt::Kind::kTransport;
    a_->error = "no answer within " + std::to_string(options_.request_timeout.count()) + " ms";
    a_->request_sent = sent > 0;
  }
  return true;
}

// How long to sleep in curl_multi_poll: until the next deadline, at most 1 s (a stop also
// wakes it).
int HttpClient::Transfer::wait_ms(SteadyClock::time_point now) const {
  auto next =
      long_poll_ && !a_->sink.headers_at ? std::min(deadline_, headers_deadline_) : deadline_;
  auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
  return static_cast<int>(std::clamp<long long>(wait, 1, 1000));
}

// The completed transfer: a response with its status, or a transport failure.
void HttpClient::Transfer::read_result() {
  CURLcode rc = CURLE_OK;
  int left = 0;
  while (CURLMsg* msg = curl().multi_info_read(m_, &left)) {
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == e_) rc = msg->data.result;
  }
  if (rc == CURLE_WRITE_ERROR && a_->sink.stream_stopped) rc = CURLE_OK;  // we ended the stream
  if (rc != CURLE_OK) {
    long sent = 0;
    curl().easy_getinfo(e_, CURLINFO_REQUEST_SIZE, &sent);
    a_->kind = Attempt::Kind::kTransport;
    a_->request_sent = sent > 0;
    a_->error = describe_failure(rc);
    return;
  }
  curl().easy_getinfo(e_, CURLINFO_RESPONSE_CODE, &a_->status);
  a_->kind = Attempt::Kind::kResponse;
}

// libcurl's message for a failed transfer, with a hint when a TLS server probably wanted the
// client certificate we do not have.
std::string HttpClient::Transfer::describe_failure(CURLcode rc) const {
  if (a_->sink.too_big) {
    return "the answer is larger than " + std::to_string(options_.max_response_bytes) +
           " bytes (-etcd-max-response-mb); raise the bound if the store really holds that much";
  }
  std::string error = errbuf_[0] ? std::string(errbuf_) : std::string(curl().easy_strerror(rc));
  while (!error.empty() && (error.back() == '\n' || error.back() == '\r')) error.pop_back();
  if (rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_RECV_ERROR ||
      rc == CURLE_SEND_ERROR) {
    if (endpoint_.starts_with("https://") && options_.certfile.empty()) {
      error +=
          " (the server may require a client certificate; none is configured: "
          "-etcd-certfile/-etcd-keyfile)";
    }
  }
  return error;
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
