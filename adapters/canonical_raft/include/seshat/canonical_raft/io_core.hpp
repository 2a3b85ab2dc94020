// seshat/canonical_raft/io_core.hpp: the backend-independent half of the
// canonical-raft adapter (compiled into libseshat-canonical-raft).
//
// io_core owns the `struct raft_io` handed to raft_init(). Its network and
// timer half (init, start, close, send, time, random, async_work) is
// forwarded to a raft_uv io with a raft_uv_tcp transport; its disk half
// (load, bootstrap, recover, set_term, set_vote, append, truncate,
// snapshot_put, snapshot_get) calls the virtual do_* members, implemented
// over seshat by seshat_raft_io (raft_io.hpp).
//
// Threading: every raft_io member runs on the libuv loop thread. Completion
// callbacks handed to raft (append, snapshot_put, snapshot_get) are always
// invoked later from that loop, through a uv_async_t: post() may be called
// from any thread (for instance seshat's sync thread), and never calls raft.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <uv.h>

// libraft 0.15's headers have no extern "C" guards of their own.
extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

namespace seshat::canonical_raft {

class io_core {
 public:
  io_core(const io_core&) = delete;
  io_core& operator=(const io_core&) = delete;
  virtual ~io_core();

  // The raft_io to pass to raft_init(). Valid while this object lives.
  raft_io* io() { return &outer_; }

  // The last error message of a failed call (also in io()->errmsg).
  const char* errmsg() const { return outer_.errmsg; }

 protected:
  io_core() = default;

  // Sets up the raft_uv io (in `uv_dir`, which must exist; raft_uv keeps
  // nothing there but its probe files) and the TCP transport on `loop`.
  // Returns a raft error code (0 on success).
  int init_network(uv_loop_t* loop, const std::string& uv_dir);

  // ---- the disk half, implemented over seshat ----------------------------
  // Each returns a raft error code; on failure it sets the message with
  // set_error(). All run on the loop thread.
  virtual int do_load(raft_term* term, raft_id* voted_for, raft_snapshot** snapshot,
                      raft_index* start_index, raft_entry** entries, size_t* n_entries) = 0;
  virtual int do_bootstrap(const raft_configuration* conf) = 0;
  virtual int do_recover(const raft_configuration* conf) = 0;
  virtual int do_set_term(raft_term term) = 0;
  virtual int do_set_vote(raft_id server_id) = 0;
  // Stores the entries (readable on return) and calls `durable` once, from
  // any thread, with a raft error code when they are durable (or failed).
  virtual void do_append(const raft_entry entries[], unsigned n,
                         std::function<void(int)> durable) = 0;
  virtual int do_truncate(raft_index index) = 0;
  virtual int do_snapshot_put(unsigned trailing, const raft_snapshot* snapshot) = 0;
  virtual int do_snapshot_get(raft_snapshot** snapshot) = 0;

  void set_error(const std::string& message);

  // Runs `f` on the loop thread, soon; callable from any thread.
  void post(std::function<void()> f);

 private:
  // The raft_io of raft_uv, with a way back to us from its callbacks.
  struct inner_io {
    raft_io io;  // first member: a raft_io* of the inner io is an inner_io*
    io_core* self;
  };
  static io_core* self(raft_io* io) { return static_cast<io_core*>(io->impl); }
  static io_core* self_of_inner(raft_io* inner) { return reinterpret_cast<inner_io*>(inner)->self; }

  void drain();
  void maybe_finish_close();
  void copy_inner_error();

  // raft_io members
  static int io_init(raft_io* io, raft_id id, const char* address);
  static void io_close(raft_io* io, raft_io_close_cb cb);
  static int io_load(raft_io* io, raft_term* term, raft_id* voted_for, raft_snapshot** snapshot,
                     raft_index* start_index, raft_entry* entries[], size_t* n_entries);
  static int io_start(raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
  static int io_bootstrap(raft_io* io, const raft_configuration* conf);
  static int io_recover(raft_io* io, const raft_configuration* conf);
  static int io_set_term(raft_io* io, raft_term term);
  static int io_set_vote(raft_io* io, raft_id server_id);
  static int io_send(raft_io* io, raft_io_send* req, const raft_message* message,
                     raft_io_send_cb cb);
  static int io_append(raft_io* io, raft_io_append* req, const raft_entry entries[], unsigned n,
                       raft_io_append_cb cb);
  static int io_truncate(raft_io* io, raft_index index);
  static int io_snapshot_put(raft_io* io, unsigned trailing, raft_io_snapshot_put* req,
                             const raft_snapshot* snapshot, raft_io_snapshot_put_cb cb);
  static int io_snapshot_get(raft_io* io, raft_io_snapshot_get* req, raft_io_snapshot_get_cb cb);
  static raft_time io_time(raft_io* io);
  static int io_random(raft_io* io, int min, int max);
  static int io_async_work(raft_io* io, raft_io_async_work* req, raft_io_async_work_cb cb);

  raft_io outer_{};
  inner_io inner_{};
  raft_uv_transport transport_{};
  uv_async_t async_{};
  bool network_ready_ = false;
  bool inner_ready_ = false;

  std::mutex queue_mutex_;
  std::deque<std::function<void()>> queue_;

  // Loop-thread state.
  std::size_t in_flight_ = 0;  // posted completions not yet run
  bool closing_ = false;
  bool inner_closed_ = false;
  raft_io_close_cb close_cb_ = nullptr;
};

}  // namespace seshat::canonical_raft
