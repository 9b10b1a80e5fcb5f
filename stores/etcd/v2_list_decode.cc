// etcd::decode_lease_list: the lease listing decoded child by child with nlohmann's SAX
// interface. The frames say where the parser is: the answer object, its "node", the node's
// "nodes" array, one child being built (a small DOM of its own, handed to node_to_lease when it
// closes), or a value nobody reads (skipped, however deep).
#include <string>
#include <utility>
#include <vector>

#include "stores/etcd/v2_decode.h"

namespace flannel::etcd {
namespace {

using nlohmann::json;

class ListHandler : public nlohmann::json_sax<json> {
 public:
  ListHandler(const std::string& dir, LeaseListBody* out) : dir_(dir), out_(*out) {}

  bool null() override { return value(json(nullptr)); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override { return value(json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return value(json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return value(json(v)); }
  bool string(string_t& v) override { return value(json(std::move(v))); }
  bool binary(binary_t& v) override { return value(json::binary(std::move(v))); }

  bool key(string_t& k) override {
    if (!frames_.empty() && frames_.back() != Frame::kSkip) key_ = std::move(k);
    return true;
  }

  bool start_object(std::size_t) override { return open(json::object(), /*array=*/false); }
  bool start_array(std::size_t) override { return open(json::array(), /*array=*/true); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    out_.json_object = false;
    return false;
  }

 private:
  enum class Frame { kRoot, kNode, kNodes, kChild, kSkip };

  // A scalar where the frames say.
  bool value(json v) {
    if (frames_.empty()) return true;  // the whole answer is a scalar: json_object stays false
    switch (frames_.back()) {
      case Frame::kRoot:
        if (key_ == "node") restart();  // a scalar node: no listing (node_is_dir false)
        return true;
      case Frame::kNode:
        if (key_ == "dir") out_.node_is_dir = v.is_boolean() && v.get<bool>();
        if (key_ == "nodes") clear_children();  // not an array: no children
        return true;
      case Frame::kNodes:
        emit(v);  // a scalar child: a warning, as node_to_lease would give
        return true;
      case Frame::kChild: add(std::move(v)); return true;
      case Frame::kSkip: return true;
    }
    return true;
  }

  bool open(json container, bool array) {
    if (frames_.empty()) {
      out_.json_object = !array;
      frames_.push_back(array ? Frame::kSkip : Frame::kRoot);
      return true;
    }
    switch (frames_.back()) {
      case Frame::kRoot:
        if (key_ == "node") {
          restart();
          frames_.push_back(array ? Frame::kSkip : Frame::kNode);  // an array node: no listing
        } else {
          frames_.push_back(Frame::kSkip);
        }
        return true;
      case Frame::kNode:
        if (key_ == "dir") out_.node_is_dir = false;
        if (key_ == "nodes") clear_children();
        frames_.push_back(key_ == "nodes" && array ? Frame::kNodes : Frame::kSkip);
        return true;
      case Frame::kNodes:
        child_ = std::move(container);
        building_.assign(1, &child_);
        frames_.push_back(Frame::kChild);
        return true;
      case Frame::kChild:
        building_.push_back(add(std::move(container)));
        frames_.push_back(Frame::kChild);
        return true;
      case Frame::kSkip: frames_.push_back(Frame::kSkip); return true;
    }
    return true;
  }

  bool close() {
    if (frames_.empty()) return false;
    Frame f = frames_.back();
    frames_.pop_back();
    if (f == Frame::kChild) {
      building_.pop_back();
      if (building_.empty()) emit(child_);
    }
    return true;
  }

  // Into the child being built, as the DOM parser would put it (a repeated key: last wins).
  json* add(json v) {
    json& top = *building_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    json& slot = top[key_];
    slot = std::move(v);
    return &slot;
  }

  void emit(const json& child) { add_listed_node(child, dir_, &out_); }

  // A repeated "node": the tree keeps the last one only.
  void restart() {
    out_.node_is_dir = false;
    clear_children();
  }
  // A repeated "nodes": the same.
  void clear_children() {
    out_.leases.clear();
    out_.warnings.clear();
  }

  const std::string& dir_;
  LeaseListBody& out_;
  std::vector<Frame> frames_;
  std::string key_;
  json child_;
  std::vector<json*> building_;
};

}  // namespace

LeaseListBody decode_lease_list(std::string_view body, const std::string& dir) {
  LeaseListBody out;
  ListHandler handler(dir, &out);
  if (!json::sax_parse(body, &handler)) out.json_object = false;
  if (!out.json_object || !out.node_is_dir) {  // no listing: nothing of it is kept
    if (!out.json_object) out.node_is_dir = false;
    out.leases.clear();
    out.warnings.clear();
  }
  return out;
}

}  // namespace flannel::etcd
