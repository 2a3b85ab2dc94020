// seshat/nuraft/state_mgr.hpp: seshat_state_mgr, seshat as NuRaft's
// nuraft::state_mgr.
//
// seshat_state_mgr<Backend, Shard, KeyFormat> keeps, in the group's state
// family (every write there is synced: durable before it returns),
//   state("nuraft_srv_state") -> srv_state::serialize()      the whole srv_state
//   state("nuraft_config")    -> cluster_config::serialize() the last saved config
// and hands NuRaft the group's seshat_log_store.
//
//   load_config()    the saved config, or the initial one given to open()
//   save_config(c)   durable on return
//   save_state(s)    durable on return: term, voted_for, the election timer
//                    flag, catching_up, and any field a later srv_state
//                    version serializes, exactly as NuRaft serialized them
//   read_state()     what save_state saved last, or nullptr (NuRaft starts
//                    at term 0 with no vote)
//   load_log_store() the same log store every time
//   system_exit(c)   options.on_exit(c); by default prints and aborts
//
// Why srv_state is its own record and not log_store::save_vote: NuRaft
// resets voted_for to -1 within the current term (handle_join_leave.cxx,
// when a server is told to join a cluster, and raft_server.cxx at start),
// and keeps flags that seshat::vote has no place for. save_vote refuses a
// second vote in one term, so mapping onto it would either refuse
// NuRaft's state or store another one than NuRaft holds. The adapter
// therefore stores NuRaft's srv_state byte for byte and does not write
// seshat's "vote" record (log_store::read_vote() stays empty for a NuRaft
// group). A failed write goes to options.on_fatal: NuRaft's save_* cannot
// return an error and must not go on as if it were saved.
//
// Thread-safety: all members may be called from many threads. Ownership:
// refers to its storage, which must outlive it.
#pragma once

#include <libnuraft/nuraft.hxx>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <utility>

#include "seshat/key_format.hpp"
#include "seshat/nuraft/log_store.hpp"
#include "seshat/storage.hpp"

namespace seshat::nuraft {

struct state_mgr_options {
  // NuRaft's system_exit(code). Default: print the code and std::abort().
  std::function<void(int)> on_exit;
  // A write that failed. Default: print it and std::abort().
  std::function<void(const status&)> on_fatal;
};

inline ptr<::nuraft::buffer> to_buffer(std::string_view bytes) {
  ptr<::nuraft::buffer> b = ::nuraft::buffer::alloc(bytes.size());
  if (!bytes.empty()) std::memcpy(b->data_begin(), bytes.data(), bytes.size());
  b->pos(0);
  return b;
}

inline std::string_view to_view(const ::nuraft::buffer& b) {
  return {reinterpret_cast<const char*>(b.data_begin()), b.size()};
}

template <class Backend, class Shard = system_shard, class KeyFormat = binary_key_format>
class seshat_state_mgr : public ::nuraft::state_mgr {
 public:
  using log_store_type = seshat_log_store<Backend, Shard, KeyFormat>;
  using storage_type = storage<Backend>;
  static constexpr column_family k_state_family = Shard::state_family;

  // REQUIRES: `store` outlives the manager; `log` is the group's log store
  // (a seshat_log_store of the group in `store`, or any other: a benchmark
  // compares NuRaft's in-memory one); `initial` is the configuration of a
  // group that never saved one.
  seshat_state_mgr(storage_type& store, Shard shard, ::nuraft::int32 server_id,
                   ptr<::nuraft::log_store> log, ptr<::nuraft::cluster_config> initial,
                   state_mgr_options options = {})
      : store_(store),
        keys_(Shard::is_system, shard.id()),
        id_(server_id),
        log_(std::move(log)),
        initial_(std::move(initial)),
        options_(std::move(options)) {}

  ptr<::nuraft::cluster_config> load_config() override {
    auto stored = store_.get(k_state_family, keys_.state("nuraft_config"));
    if (stored.status().is(errc::not_found)) return initial_;
    if (!stored.ok()) {
      fatal(stored.status().with_context("nuraft state_mgr: load_config: "));
      return nullptr;
    }
    ptr<::nuraft::buffer> b = to_buffer(*stored);
    return ::nuraft::cluster_config::deserialize(*b);
  }

  void save_config(const ::nuraft::cluster_config& config) override {
    put("nuraft_config", config.serialize());
  }

  void save_state(const ::nuraft::srv_state& state) override {
    put("nuraft_srv_state", state.serialize());
  }

  ptr<::nuraft::srv_state> read_state() override {
    auto stored = store_.get(k_state_family, keys_.state("nuraft_srv_state"));
    if (stored.status().is(errc::not_found)) return nullptr;
    if (!stored.ok()) {
      fatal(stored.status().with_context("nuraft state_mgr: read_state: "));
      return nullptr;
    }
    ptr<::nuraft::buffer> b = to_buffer(*stored);
    return ::nuraft::srv_state::deserialize(*b);
  }

  ptr<::nuraft::log_store> load_log_store() override { return log_; }

  ::nuraft::int32 server_id() override { return id_; }

  void system_exit(const int exit_code) override {
    if (options_.on_exit) return options_.on_exit(exit_code);
    std::fprintf(stderr, "seshat nuraft state_mgr: NuRaft called system_exit(%d)\n", exit_code);
    std::abort();
  }

 private:
  void put(std::string_view name, const ptr<::nuraft::buffer>& bytes) {
    status s = store_.put(k_state_family, keys_.state(name), to_view(*bytes));
    if (!s.ok()) fatal(s.with_context("nuraft state_mgr: saving " + std::string(name) + ": "));
  }

  void fatal(const status& s) {
    if (options_.on_fatal) return options_.on_fatal(s);
    std::fprintf(stderr, "seshat nuraft state_mgr: %s\n", s.to_string().c_str());
    std::abort();
  }

  storage_type& store_;
  const group_keys<KeyFormat> keys_;
  const ::nuraft::int32 id_;
  const ptr<::nuraft::log_store> log_;
  const ptr<::nuraft::cluster_config> initial_;
  const state_mgr_options options_;
};

}  // namespace seshat::nuraft
