// examples/kv_node.cpp: a replicated key-value node. canonical raft (libraft)
// drives consensus; seshat keeps everything on disk: the raft log, term and
// vote through the adapter (adapters/canonical_raft), the key-value data and
// what was applied through seshat::state_machine_store.
//
//   kv_node <id> <nodes> <base_port> <data_dir> [options]
//     raft address   127.0.0.1:<base_port + id>
//     control port   127.0.0.1:<base_port + 100 + id>  (a line protocol)
//   options:
//     --shard N          keep the group in data shard N (default: the system shard)
//     --backend B        rocksdb (default) | leveldb | memory | rocksdb+segments
//                        (RocksDB with the Raft log in seshat's log engine)
//     --snapshot-threshold N, --snapshot-trailing N   (raft's; default 1024, 2048)
//     --election-timeout MS  (default 600), --heartbeat MS (default 60)
//
// Nodes 1..<nodes> form the cluster; each bootstraps the same configuration
// on first start (later starts find their store and skip it).
//
// Control protocol, one command a line, one reply a line:
//   put <key> <value>  -> OK <key> | ERR <key> <reason>    (on the leader only:
//                         raft_apply; OK once committed and applied here)
//   get <key>          -> VAL <value> | NONE          (this node's state machine)
//   leader?            -> LEADER <id> <state>         (id 0: unknown)
//   dump               -> KV <key> <value> ... then END <count> <last applied index>
//   stats              -> STATS <snapshots installed> <restores> <log first index>
//                         <log last index> <last applied index>   (counts since
//                         this process started; installed: a restore that
//                         replaced the state machine; first index: last purged + 1)
//   quit               -> closes the connection
// Metrics: an HTTP GET on the control port (the request line is told from a
// command by its "GET <path> HTTP/1.x"), e.g.
//   curl http://127.0.0.1:<base_port + 100 + id>/metrics
// answers /metrics with the store's metrics in the Prometheus text format
// (seshat/prometheus.hpp, labelled node="<id>"; keys per family not
// counted), anything else with 404; then the connection is closed.
// Environment: KV_NODE_TRACE=1 logs every FSM apply and restore to stderr.
// SIGTERM/SIGINT: raft_close, then the store is closed and the node exits.
#include <uv.h>

#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/backends/segmented.hpp"
#include "seshat/canonical_raft/raft_io.hpp"
#include "seshat/prometheus.hpp"
#include "seshat/state_machine_store.hpp"
#include "seshat/storage.hpp"
#ifdef SESHAT_HAVE_ROCKSDB
#include "seshat/backends/rocksdb_backend.hpp"
#endif
#ifdef SESHAT_HAVE_LEVELDB
#include "seshat/backends/leveldb_backend.hpp"
#endif

namespace {

namespace cr = seshat::canonical_raft;

struct options {
  unsigned id = 0, nodes = 0, base_port = 0;
  std::string dir;
  std::uint64_t shard = 0;
  std::string backend = "rocksdb";
  unsigned snapshot_threshold = 1024, snapshot_trailing = 2048;
  unsigned election_timeout = 600, heartbeat = 60;
};

// A command as the state machine store sees it.
struct kv_op {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::string key, value;  // an empty key: a no-op (an index raft applied without the FSM)
};

bool trace() {
  static const bool on = std::getenv("KV_NODE_TRACE") != nullptr;
  return on;
}

void die(const std::string& what) {
  std::fprintf(stderr, "kv_node: %s\n", what.c_str());
  std::exit(1);
}

// ---- the node, generic over the backend and the shard --------------------

class node_base {
 public:
  virtual ~node_base() = default;
  virtual std::string handle(std::string_view line, struct conn* c) = 0;
  // The whole HTTP response to a GET of `path`.
  virtual std::string http_get(std::string_view path) = 0;
};

struct conn {
  uv_tcp_t handle;
  std::string in;
  bool closed = false;
  int refs = 1;  // the handle, plus one per pending apply
  node_base* node = nullptr;
  bool http = false;  // an HTTP request line came: its headers follow
  std::string http_path;
};

void conn_unref(conn* c) {
  if (--c->refs == 0) delete c;
}

void conn_write(conn* c, std::string text) {
  if (c->closed) return;
  struct wreq {
    uv_write_t req;
    std::string data;
  };
  auto* w = new wreq;
  w->data = std::move(text);
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&c->handle), &buf, 1,
               [](uv_write_t* r, int) { delete reinterpret_cast<wreq*>(r); }) != 0)
    delete w;
}

void conn_close(conn* c) {
  if (c->closed) return;
  c->closed = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->handle),
           [](uv_handle_t* h) { conn_unref(static_cast<conn*>(h->data)); });
}

// Closes the connection once what was written is sent (an HTTP response).
void conn_finish(conn* c) {
  if (c->closed) return;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->handle));
  auto* req = new uv_shutdown_t;
  req->data = c;
  if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&c->handle), [](uv_shutdown_t* r, int) {
        conn_close(static_cast<conn*>(r->data));
        delete r;
      }) != 0) {
    delete req;
    conn_close(c);
  }
}

std::string http_response(std::string_view status, std::string_view type, std::string_view body) {
  std::string out = "HTTP/1.1 ";
  out += status;
  out += "\r\nContent-Type: ";
  out += type;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  out += body;
  return out;
}

template <class Backend, class Shard>
class node final : public node_base {
 public:
  using raft_io_type = cr::seshat_raft_io<Backend, Shard>;
  using machine = seshat::state_machine_store<kv_op, Backend, Shard>;

  node(const options& o, Shard shard, uv_loop_t* loop) : opt_(o), loop_(loop) {
    namespace fs = std::filesystem;
    fs::create_directories(fs::path(o.dir) / "uv");
    auto st = seshat::storage<Backend>::open(fs::path(o.dir) / "store");
    if (!st.ok()) die("open store: " + st.status().to_string());
    store_ = std::move(*st);
    auto sm = machine::open(*store_, shard);
    if (!sm.ok()) die("open state machine: " + sm.status().to_string());
    sm_ = std::make_unique<machine>(std::move(*sm));
    auto io = raft_io_type::open(*store_, shard, loop, (fs::path(o.dir) / "uv").string());
    if (!io.ok()) die("open raft io: " + io.status().to_string());
    io_ = std::move(*io);
    {
      const auto st = io_->log().get_log_state();
      std::fprintf(stderr, "kv_node: start log first %llu last %llu applied %llu\n",
                   static_cast<unsigned long long>(st.last_purged ? st.last_purged->index + 1 : 1),
                   static_cast<unsigned long long>(st.last ? st.last->index : 0),
                   static_cast<unsigned long long>(applied_index()));
    }

    fsm_.version = 1;
    fsm_.data = this;
    fsm_.apply = fsm_apply;
    fsm_.snapshot = fsm_snapshot;
    fsm_.restore = fsm_restore;

    address_ = "127.0.0.1:" + std::to_string(o.base_port + o.id);
    if (int rv = raft_init(&raft_, io_->io(), &fsm_, o.id, address_.c_str()); rv != 0)
      die(std::string("raft_init: ") + raft_errmsg(&raft_));
    raft_.data = this;
    raft_set_election_timeout(&raft_, o.election_timeout);
    raft_set_heartbeat_timeout(&raft_, o.heartbeat);
    raft_set_snapshot_threshold(&raft_, o.snapshot_threshold);
    raft_set_snapshot_trailing(&raft_, o.snapshot_trailing);

    raft_configuration conf;
    raft_configuration_init(&conf);
    for (unsigned i = 1; i <= o.nodes; ++i) {
      std::string a = "127.0.0.1:" + std::to_string(o.base_port + i);
      if (raft_configuration_add(&conf, i, a.c_str(), RAFT_VOTER) != 0) die("configuration");
    }
    int rv = raft_bootstrap(&raft_, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) die(std::string("raft_bootstrap: ") + raft_errmsg(&raft_));
    if (rv = raft_start(&raft_); rv != 0) die(std::string("raft_start: ") + raft_errmsg(&raft_));
  }

  void close(raft_close_cb cb) { raft_close(&raft_, cb); }
  void finish() {
    io_.reset();
    sm_.reset();
    if (store_) (void)store_->close();
  }

  std::string handle(std::string_view line, conn* c) override {
    auto sp = line.find(' ');
    std::string_view cmd = line.substr(0, sp);
    std::string_view rest = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    if (cmd == "put") {
      auto sp2 = rest.find(' ');
      std::string key(rest.substr(0, sp2));
      std::string value(sp2 == std::string_view::npos ? std::string_view() : rest.substr(sp2 + 1));
      if (key.empty() || value.empty()) return "ERR - usage: put <key> <value>\n";
      if (raft_state(&raft_) != RAFT_LEADER) {
        raft_id id = 0;
        const char* addr = nullptr;
        raft_leader(&raft_, &id, &addr);
        return "ERR " + key + " notleader " + std::to_string(id) + "\n";
      }
      std::string payload = "P " + key + " " + value;
      // raft_uv's TCP transport sends entry payloads unpadded but decodes
      // them as if each were padded to 8 bytes: keep every payload a
      // multiple of 8 (NUL padding, stripped by fsm_apply).
      payload.resize((payload.size() + 7) / 8 * 8, '\0');
      raft_buffer buf;
      buf.len = payload.size();
      buf.base = raft_malloc(buf.len);
      std::memcpy(buf.base, payload.data(), buf.len);
      auto* req = new apply_req;
      req->c = c;
      req->key = key;
      req->req.data = req;
      ++c->refs;
      if (int rv = raft_apply(&raft_, &req->req, &buf, 1, apply_done); rv != 0) {
        raft_free(buf.base);
        delete req;
        conn_unref(c);
        return "ERR " + key + " " + raft_strerror(rv) + "\n";
      }
      return {};
    }
    if (cmd == "get") {
      auto v = sm_->get(rest);
      if (v.ok()) return "VAL " + v->data + "\n";
      return "NONE\n";
    }
    if (cmd == "leader?") {
      raft_id id = 0;
      const char* addr = nullptr;
      raft_leader(&raft_, &id, &addr);
      static const char* names[] = {"unavailable", "follower", "candidate", "leader"};
      return "LEADER " + std::to_string(id) + " " + names[raft_state(&raft_)] + "\n";
    }
    if (cmd == "dump") {
      std::string out;
      std::size_t n = 0;
      auto s = sm_->for_each([&](std::string_view k, const seshat::stored_value& v) {
        out += "KV ";
        out += k;
        out += ' ';
        out += v.data;
        out += '\n';
        ++n;
      });
      if (!s.ok()) return "ERR - " + s.to_string() + "\n";
      auto applied = sm_->applied_state();
      std::uint64_t idx = applied.ok() && applied->last_applied ? applied->last_applied->index : 0;
      return out + "END " + std::to_string(n) + " " + std::to_string(idx) + "\n";
    }
    if (cmd == "stats") {
      const auto st = io_->log().get_log_state();
      return "STATS " + std::to_string(installs_) + " " + std::to_string(restores_) + " " +
             std::to_string(st.last_purged ? st.last_purged->index + 1 : 1) + " " +
             std::to_string(st.last ? st.last->index : 0) + " " + std::to_string(applied_index()) +
             "\n";
    }
    if (cmd == "quit") {
      conn_close(c);
      return {};
    }
    return "ERR - unknown command\n";
  }

  std::string http_get(std::string_view path) override {
    if (path != "/metrics") return http_response("404 Not Found", "text/plain", "try /metrics\n");
    auto text = seshat::prometheus_text(*store_, {{{"node", std::to_string(opt_.id)}}});
    if (!text.ok())
      return http_response("500 Internal Server Error", "text/plain", text.status().to_string() + "\n");
    return http_response("200 OK", seshat::k_prometheus_content_type, *text);
  }

 private:
  struct apply_req {
    struct raft_apply req;
    conn* c;
    std::string key;
  };

  static void apply_done(struct raft_apply* r, int status, void* /*result*/) {
    auto* req = static_cast<apply_req*>(r->data);
    if (status == 0)
      conn_write(req->c, "OK " + req->key + "\n");
    else
      conn_write(req->c, "ERR " + req->key + " " + raft_strerror(status) + "\n");
    conn_unref(req->c);
    delete req;
  }

  std::uint64_t applied_index() {
    auto a = sm_->applied_state();
    if (!a.ok()) die("applied state: " + a.status().to_string());
    return a->last_applied ? a->last_applied->index : 0;
  }

  // Apply one command entry. Its index is raft's last applied + 1 (raft
  // applies in order, updating last_applied after each entry, commands or
  // not). An index the store already applied is skipped: raft replays the
  // log from its snapshot at every start, but the store is already there.
  static int fsm_apply(raft_fsm* fsm, const raft_buffer* buf, void** result) {
    auto* self = static_cast<node*>(fsm->data);
    *result = nullptr;
    const std::uint64_t index = self->raft_.last_applied + 1;
    const std::uint64_t applied = self->applied_index();
    std::string_view text(static_cast<const char*>(buf->base), buf->len);
    while (!text.empty() && text.back() == '\0') text.remove_suffix(1);
    if (trace())
      std::fprintf(stderr, "apply %llu (store applied %llu): %.*s\n",
                   static_cast<unsigned long long>(index), static_cast<unsigned long long>(applied),
                   static_cast<int>(text.size()), text.data());
    if (index <= applied) return 0;
    kv_op op;
    op.index = index;
    auto t = self->io_->log().term_at(index);
    op.term = t.ok() ? *t : self->raft_.current_term;
    if (text.size() > 2 && text.substr(0, 2) == "P ") {
      text.remove_prefix(2);
      auto sp = text.find(' ');
      op.key = std::string(text.substr(0, sp));
      op.value = sp == std::string_view::npos ? std::string() : std::string(text.substr(sp + 1));
    }
    // Entries raft applied without the FSM (barriers, configurations) leave
    // gaps: fill them with no-ops so the applied log stays consecutive.
    std::vector<kv_op> ops;
    if (applied != 0)
      for (std::uint64_t i = applied + 1; i < index; ++i) ops.push_back(kv_op{op.term, i, {}, {}});
    ops.push_back(std::move(op));
    auto s = self->sm_->apply(ops, [](const kv_op& o, seshat::state_machine_batch& b) {
      if (!o.key.empty()) b.put(o.key, o.value, o.index, /*created_at_ms=*/0);
    });
    if (!s.ok()) {
      std::fprintf(stderr, "kv_node: apply %llu: %s\n", static_cast<unsigned long long>(index),
                   s.to_string().c_str());
      return RAFT_IOERR;
    }
    return 0;
  }

  // Snapshot data := applied_term applied_index (key_len key value_len value)*  (u64le)
  static int fsm_snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n_bufs) {
    auto* self = static_cast<node*>(fsm->data);
    std::string out;
    auto a = self->sm_->applied_state();
    if (!a.ok()) return RAFT_IOERR;
    cr::detail::put_u64(out, a->last_applied ? a->last_applied->term : 0);
    cr::detail::put_u64(out, a->last_applied ? a->last_applied->index : 0);
    auto s = self->sm_->for_each([&](std::string_view k, const seshat::stored_value& v) {
      cr::detail::put_u64(out, k.size());
      out += k;
      cr::detail::put_u64(out, v.data.size());
      out += v.data;
    });
    if (!s.ok()) return RAFT_IOERR;
    *bufs = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
    (*bufs)[0].len = out.size();
    (*bufs)[0].base = raft_malloc(out.size());
    std::memcpy((*bufs)[0].base, out.data(), out.size());
    *n_bufs = 1;
    return 0;
  }

  // The FSM owns buf->base. A snapshot older than what the store applied is
  // skipped (at start raft restores its last snapshot, the store already
  // holds everything it had applied).
  static int fsm_restore(raft_fsm* fsm, raft_buffer* buf) {
    auto* self = static_cast<node*>(fsm->data);
    std::string_view in(static_cast<const char*>(buf->base), buf->len);
    std::uint64_t term = 0, index = 0;
    int rv = 0;
    ++self->restores_;
    if (!cr::detail::take_u64(in, term) || !cr::detail::take_u64(in, index)) {
      rv = RAFT_CORRUPT;
    } else if (trace() && (std::fprintf(stderr, "restore %llu (store applied %llu)\n",
                                         static_cast<unsigned long long>(index),
                                         static_cast<unsigned long long>(self->applied_index())),
                           false)) {
    } else if (index > self->applied_index()) {
      seshat::applied_state state;
      if (index != 0) state.last_applied = seshat::log_id{term, index};
      bool ok = true;
      machine& sm = *self->sm_;
      auto s = sm.replace_all(state, [&](auto& put) -> seshat::status {
        std::string_view rest = in;
        while (!rest.empty()) {
          std::string_view k, v;
          if (!cr::detail::take_bytes(rest, k) || !cr::detail::take_bytes(rest, v)) {
            ok = false;
            return seshat::status::corrupted_data("kv_node: snapshot data does not decode");
          }
          SESHAT_RETURN_IF_ERROR(
              put(sm.data_key(k), seshat::stored_value{index, std::string(v), 0, std::nullopt}.encode()));
        }
        return {};
      });
      if (!ok) rv = RAFT_CORRUPT;
      else if (!s.ok()) {
        std::fprintf(stderr, "kv_node: restore: %s\n", s.to_string().c_str());
        rv = RAFT_IOERR;
      } else {
        ++self->installs_;
        std::fprintf(stderr, "kv_node: installed snapshot %llu\n", static_cast<unsigned long long>(index));
      }
    }
    raft_free(buf->base);
    return rv;
  }

  options opt_;
  uv_loop_t* loop_;
  std::unique_ptr<seshat::storage<Backend>> store_;
  std::unique_ptr<machine> sm_;
  std::unique_ptr<raft_io_type> io_;
  raft_fsm fsm_{};
  raft raft_{};
  std::string address_;
  std::uint64_t installs_ = 0, restores_ = 0;
};

// ---- the control port ------------------------------------------------------

node_base* g_node = nullptr;

void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* c = static_cast<conn*>(s->data);
  if (n < 0) {
    delete[] buf->base;
    conn_close(c);
    return;
  }
  c->in.append(buf->base, static_cast<std::size_t>(n));
  delete[] buf->base;
  std::size_t pos;
  std::string replies;
  while (!c->closed && (pos = c->in.find('\n')) != std::string::npos) {
    std::string line = c->in.substr(0, pos);
    c->in.erase(0, pos + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (c->http) {  // headers, up to the empty line that ends the request
      if (!line.empty()) continue;
      conn_write(c, c->node->http_get(c->http_path));
      conn_finish(c);
      break;
    }
    if (line.starts_with("GET ") && line.find(" HTTP/1.") != std::string::npos) {
      c->http = true;
      c->http_path = line.substr(4, line.find(' ', 4) - 4);
      continue;
    }
    if (line.empty()) continue;
    std::string reply = c->node->handle(line, c);
    if (!reply.empty()) conn_write(c, std::move(reply));
  }
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto* c = new conn;
  c->node = g_node;
  uv_tcp_init(server->loop, &c->handle);
  c->handle.data = c;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->handle)) != 0) {
    conn_close(c);
    return;
  }
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->handle),
      [](uv_handle_t*, size_t suggested, uv_buf_t* b) {
        b->base = new char[suggested];
        b->len = suggested;
      },
      on_read);
}

unsigned parse_uint(const char* s, const char* what) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s, s + std::strlen(s), v);
  if (ec != std::errc() || *p != 0) die(std::string("bad ") + what + ": " + s);
  return v;
}

template <class Backend>
int run_backend(const options& o, uv_loop_t* loop, uv_tcp_t* server);

uv_signal_t g_sigterm, g_sigint;
uv_tcp_t* g_server = nullptr;

template <class N>
int run_node(N& n, uv_loop_t* loop) {
  static N* current = &n;
  current = &n;
  auto on_signal = [](uv_signal_t*, int) {
    uv_signal_stop(&g_sigterm);
    uv_signal_stop(&g_sigint);
    current->close([](raft*) {
      uv_close(reinterpret_cast<uv_handle_t*>(g_server), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&g_sigterm), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&g_sigint), nullptr);
    });
  };
  uv_signal_init(loop, &g_sigterm);
  uv_signal_init(loop, &g_sigint);
  uv_signal_start(&g_sigterm, on_signal, SIGTERM);
  uv_signal_start(&g_sigint, on_signal, SIGINT);
  std::fprintf(stderr, "kv_node: ready\n");
  uv_run(loop, UV_RUN_DEFAULT);
  n.finish();
  return 0;
}

template <class Backend>
int run_backend(const options& o, uv_loop_t* loop) {
  if (o.shard == 0) {
    node<Backend, seshat::system_shard> n(o, seshat::system_shard{}, loop);
    g_node = &n;
    return run_node(n, loop);
  }
  node<Backend, seshat::data_shard> n(o, seshat::data_shard{static_cast<seshat::shard_id>(o.shard)}, loop);
  g_node = &n;
  return run_node(n, loop);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: kv_node <id> <nodes> <base_port> <data_dir> [--shard N] "
                         "[--backend rocksdb|leveldb|memory|rocksdb+segments] [--snapshot-threshold N] "
                         "[--snapshot-trailing N] [--election-timeout MS] [--heartbeat MS]\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  std::signal(SIGPIPE, SIG_IGN);  // a peer gone: libuv reports EPIPE instead
  options o;
  o.id = parse_uint(argv[1], "id");
  o.nodes = parse_uint(argv[2], "nodes");
  o.base_port = parse_uint(argv[3], "base_port");
  o.dir = argv[4];
  for (int i = 5; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--shard") o.shard = parse_uint(argv[i + 1], "shard");
    else if (f == "--backend") o.backend = argv[i + 1];
    else if (f == "--snapshot-threshold") o.snapshot_threshold = parse_uint(argv[i + 1], "threshold");
    else if (f == "--snapshot-trailing") o.snapshot_trailing = parse_uint(argv[i + 1], "trailing");
    else if (f == "--election-timeout") o.election_timeout = parse_uint(argv[i + 1], "election timeout");
    else if (f == "--heartbeat") o.heartbeat = parse_uint(argv[i + 1], "heartbeat");
    else die("unknown option " + f);
  }
  if (o.id == 0 || o.id > o.nodes) die("id must be in 1..nodes");

  uv_loop_t* loop = uv_default_loop();
  static uv_tcp_t server;
  g_server = &server;
  uv_tcp_init(loop, &server);
  sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", static_cast<int>(o.base_port + 100 + o.id), &addr);
  if (int rv = uv_tcp_bind(&server, reinterpret_cast<const sockaddr*>(&addr), 0); rv != 0)
    die(std::string("control port bind: ") + uv_strerror(rv));
  if (int rv = uv_listen(reinterpret_cast<uv_stream_t*>(&server), 128, on_connection); rv != 0)
    die(std::string("control port listen: ") + uv_strerror(rv));

  if (o.backend == "memory") return run_backend<seshat::memory_backend>(o, loop);
#ifdef SESHAT_HAVE_ROCKSDB
  if (o.backend == "rocksdb") return run_backend<seshat::rocksdb_backend>(o, loop);
  if (o.backend == "rocksdb+segments")
    return run_backend<seshat::segmented<seshat::rocksdb_backend>>(o, loop);
#endif
#ifdef SESHAT_HAVE_LEVELDB
  if (o.backend == "leveldb") return run_backend<seshat::leveldb_backend>(o, loop);
#endif
  die("backend not built: " + o.backend);
}
