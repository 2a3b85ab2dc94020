// The backend-independent half of the canonical-raft adapter: see
// seshat/canonical_raft/io_core.hpp.
#include "seshat/canonical_raft/io_core.hpp"

#include <cstdio>
#include <cstring>
#include <utility>

namespace seshat::canonical_raft {

io_core::~io_core() {
  if (inner_ready_) raft_uv_close(&inner_.io);
  if (network_ready_) raft_uv_tcp_close(&transport_);
}

int io_core::init_network(uv_loop_t* loop, const std::string& uv_dir) {
  int rv = raft_uv_tcp_init(&transport_, loop);
  if (rv != 0) {
    set_error(std::string("raft_uv_tcp_init: ") + raft_strerror(rv));
    return rv;
  }
  network_ready_ = true;
  inner_.self = this;
  rv = raft_uv_init(&inner_.io, loop, uv_dir.c_str(), &transport_);
  if (rv != 0) {
    set_error(std::string("raft_uv_init: ") + inner_.io.errmsg);
    return rv;
  }
  inner_ready_ = true;
  rv = uv_async_init(loop, &async_, [](uv_async_t* h) { static_cast<io_core*>(h->data)->drain(); });
  if (rv != 0) {
    set_error(std::string("uv_async_init: ") + uv_strerror(rv));
    return RAFT_IOERR;
  }
  async_.data = this;

  outer_.version = inner_.io.version;
  outer_.impl = this;
  outer_.init = io_init;
  outer_.close = io_close;
  outer_.load = io_load;
  outer_.start = io_start;
  outer_.bootstrap = io_bootstrap;
  outer_.recover = io_recover;
  outer_.set_term = io_set_term;
  outer_.set_vote = io_set_vote;
  outer_.send = io_send;
  outer_.append = io_append;
  outer_.truncate = io_truncate;
  outer_.snapshot_put = io_snapshot_put;
  outer_.snapshot_get = io_snapshot_get;
  outer_.time = io_time;
  outer_.random = io_random;
  outer_.async_work = inner_.io.version >= 2 ? io_async_work : nullptr;
  return 0;
}

void io_core::set_error(const std::string& message) {
  std::snprintf(outer_.errmsg, sizeof outer_.errmsg, "%s", message.c_str());
}

void io_core::copy_inner_error() {
  std::memcpy(outer_.errmsg, inner_.io.errmsg, sizeof outer_.errmsg);
}

void io_core::post(std::function<void()> f) {
  {
    std::lock_guard lock(queue_mutex_);
    queue_.push_back(std::move(f));
  }
  uv_async_send(&async_);
}

void io_core::drain() {
  std::deque<std::function<void()>> work;
  {
    std::lock_guard lock(queue_mutex_);
    work.swap(queue_);
  }
  for (auto& f : work) {
    f();
    --in_flight_;
  }
  maybe_finish_close();
}

// Close: wait for every pending completion to have been delivered, then
// close raft_uv (its timers and transport), then our async handle, then
// tell raft.
void io_core::maybe_finish_close() {
  if (!closing_ || in_flight_ != 0 || inner_closed_) return;
  inner_closed_ = true;
  inner_.io.close(&inner_.io, [](raft_io* inner) {
    io_core* self = self_of_inner(inner);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->async_), [](uv_handle_t* h) {
      io_core* me = static_cast<io_core*>(h->data);
      if (me->close_cb_) me->close_cb_(&me->outer_);
    });
  });
}

int io_core::io_init(raft_io* io, raft_id id, const char* address) {
  io_core* s = self(io);
  s->inner_.io.data = io->data;  // raft's tick and recv callbacks read io->data
  int rv = s->inner_.io.init(&s->inner_.io, id, address);
  if (rv != 0) s->copy_inner_error();
  return rv;
}

void io_core::io_close(raft_io* io, raft_io_close_cb cb) {
  io_core* s = self(io);
  s->closing_ = true;
  s->close_cb_ = cb;
  s->maybe_finish_close();
}

int io_core::io_load(raft_io* io, raft_term* term, raft_id* voted_for, raft_snapshot** snapshot,
                     raft_index* start_index, raft_entry* entries[], size_t* n_entries) {
  return self(io)->do_load(term, voted_for, snapshot, start_index, entries, n_entries);
}

int io_core::io_start(raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv) {
  io_core* s = self(io);
  s->inner_.io.data = io->data;
  int rv = s->inner_.io.start(&s->inner_.io, msecs, tick, recv);
  if (rv != 0) s->copy_inner_error();
  return rv;
}

int io_core::io_bootstrap(raft_io* io, const raft_configuration* conf) {
  return self(io)->do_bootstrap(conf);
}

int io_core::io_recover(raft_io* io, const raft_configuration* conf) {
  return self(io)->do_recover(conf);
}

int io_core::io_set_term(raft_io* io, raft_term term) { return self(io)->do_set_term(term); }

int io_core::io_set_vote(raft_io* io, raft_id server_id) {
  return self(io)->do_set_vote(server_id);
}

int io_core::io_send(raft_io* io, raft_io_send* req, const raft_message* message,
                     raft_io_send_cb cb) {
  io_core* s = self(io);
  int rv = s->inner_.io.send(&s->inner_.io, req, message, cb);
  if (rv != 0) s->copy_inner_error();
  return rv;
}

int io_core::io_append(raft_io* io, raft_io_append* req, const raft_entry entries[], unsigned n,
                       raft_io_append_cb cb) {
  io_core* s = self(io);
  if (s->closing_) {
    s->set_error("append after close");
    return RAFT_CANCELED;
  }
  ++s->in_flight_;
  if (n == 0) {
    s->post([req, cb] { cb(req, 0); });
    return 0;
  }
  // The durable callback fires on seshat's sync thread (or here, at once, on
  // an error): it only posts the raft callback back onto the loop.
  s->do_append(entries, n, [s, req, cb](int status) { s->post([req, cb, status] { cb(req, status); }); });
  return 0;
}

int io_core::io_truncate(raft_io* io, raft_index index) { return self(io)->do_truncate(index); }

int io_core::io_snapshot_put(raft_io* io, unsigned trailing, raft_io_snapshot_put* req,
                             const raft_snapshot* snapshot, raft_io_snapshot_put_cb cb) {
  io_core* s = self(io);
  int rv = s->do_snapshot_put(trailing, snapshot);
  ++s->in_flight_;
  s->post([req, cb, rv] { cb(req, rv); });
  return 0;
}

int io_core::io_snapshot_get(raft_io* io, raft_io_snapshot_get* req, raft_io_snapshot_get_cb cb) {
  io_core* s = self(io);
  raft_snapshot* snapshot = nullptr;
  int rv = s->do_snapshot_get(&snapshot);
  ++s->in_flight_;
  s->post([req, cb, rv, snapshot] { cb(req, snapshot, rv); });
  return 0;
}

raft_time io_core::io_time(raft_io* io) {
  io_core* s = self(io);
  return s->inner_.io.time(&s->inner_.io);
}

int io_core::io_random(raft_io* io, int min, int max) {
  io_core* s = self(io);
  return s->inner_.io.random(&s->inner_.io, min, max);
}

int io_core::io_async_work(raft_io* io, raft_io_async_work* req, raft_io_async_work_cb cb) {
  io_core* s = self(io);
  int rv = s->inner_.io.async_work(&s->inner_.io, req, cb);
  if (rv != 0) s->copy_inner_error();
  return rv;
}

}  // namespace seshat::canonical_raft
