// examples/nuraft_kv.cpp: a replicated key-value server. NuRaft drives
// consensus; seshat keeps everything on disk through adapters/nuraft: the
// log (seshat_log_store, parallel log appending driven by seshat's group
// commit), NuRaft's srv_state and cluster config (seshat_state_mgr), the
// key-value data, what was applied and the snapshots (seshat_state_machine
// over state_machine_store and snapshot_manager).
//
//   nuraft_kv <id> <nodes> <base_port> <data_dir> [options]
//     raft port      <base_port + id>     (NuRaft listens on 0.0.0.0)
//     control port   127.0.0.1:<base_port + 100 + id>  (a line protocol)
//   options:
//     --backend B            rocksdb (default) | leveldb | memory
//     --shard N              keep the group in data shard N (default: the system shard)
//     --log-store S          seshat (default) | nuraft-memory (NuRaft's in-memory
//                            example store, for the benchmark's upper bound)
//     --parallel 0|1         raft_params::parallel_log_appending_ (default 1)
//     --snapshot-distance N  (default 1024), --reserved-logs N (default 2048)
//     --election-timeout MS  (default 600), --heartbeat MS (default 60)
//
// Nodes 1..<nodes> start with the same configuration (every node a voter)
// and elect a leader.
//
// Control protocol, one command a line, one reply a line:
//   put <key> <value>  -> OK <key> | ERR <key> <reason>   (leader only; OK once
//                         committed and applied on the leader). Replies of
//                         pipelined puts may come in any order.
//   get <key>          -> VAL <value> | NONE         (this node's state machine)
//   leader?            -> LEADER <id> <leader|follower>   (id 0: unknown)
//   dump               -> KV <key> <value> ... then END <count> <last applied index>
//   stats              -> STATS <snapshots installed> 0 <log start index>
//                         <log last index> <last applied index>
//   quit               -> closes the connection
// At start it prints "nuraft_kv: start log first F last L applied A".
// SIGTERM/SIGINT: NuRaft is shut down, then the store is closed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/nuraft/log_store.hpp"
#include "seshat/nuraft/state_machine.hpp"
#include "seshat/nuraft/state_mgr.hpp"
#ifdef SESHAT_HAVE_ROCKSDB
#include "seshat/backends/rocksdb_backend.hpp"
#endif
#ifdef SESHAT_HAVE_LEVELDB
#include "seshat/backends/leveldb_backend.hpp"
#endif
#ifdef SESHAT_HAVE_NURAFT_INMEM
#include "in_memory_log_store.hxx"
#endif

namespace {

namespace sn = seshat::nuraft;

struct options {
  unsigned id = 0, nodes = 0, base_port = 0;
  std::string dir;
  std::uint64_t shard = 0;
  std::string backend = "rocksdb", log_store = "seshat";
  bool parallel = true;
  unsigned snapshot_distance = 1024, reserved_logs = 2048;
  unsigned election_timeout = 600, heartbeat = 60;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "nuraft_kv: %s\n", what.c_str());
  std::exit(1);
}

unsigned parse_uint(const char* s, const char* what) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s, s + std::strlen(s), v);
  if (ec != std::errc() || *p != '\0') die(std::string("bad ") + what + ": " + s);
  return v;
}

std::atomic<bool> g_stop{false};

// A client connection: replies may come from NuRaft's threads.
struct conn {
  int fd;
  std::mutex mutex;
  explicit conn(int f) : fd(f) {}
  ~conn() { ::close(fd); }
  void send(std::string line) {
    line += '\n';
    std::lock_guard lock(mutex);
    for (std::size_t done = 0; done < line.size();) {
      ssize_t n = ::send(fd, line.data() + done, line.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += static_cast<std::size_t>(n);
    }
  }
};

template <class Backend, class Shard>
class server {
 public:
  using log_type = sn::seshat_log_store<Backend, Shard>;
  using sm_type = sn::seshat_state_machine<Backend, Shard>;
  using mgr_type = sn::seshat_state_mgr<Backend, Shard>;

  server(const options& o, Shard shard) : opt_(o) {
    namespace fs = std::filesystem;
    auto st = seshat::storage<Backend>::open(fs::path(o.dir) / "store");
    if (!st.ok()) die("open store: " + st.status().to_string());
    store_ = std::move(*st);

    sn::log_store_options lo;
    lo.parallel_appending = o.parallel;
    auto log = log_type::open(*store_, shard, lo);
    if (!log.ok()) die("open log: " + log.status().to_string());
    log_ = *log;

    auto sm = sm_type::open(*store_, shard, log_,
                            [](std::uint64_t index, ::nuraft::buffer& data,
                               seshat::state_machine_batch& batch) -> sn::ptr<::nuraft::buffer> {
                              // a command: key '\0' value
                              const std::string_view cmd = sn::to_view(data);
                              const std::size_t sep = cmd.find('\0');
                              if (sep == std::string_view::npos) return nullptr;
                              batch.put(cmd.substr(0, sep), cmd.substr(sep + 1), index, 0);
                              return nullptr;
                            });
    if (!sm.ok()) die("open state machine: " + sm.status().to_string());
    sm_ = *sm;

    sn::ptr<::nuraft::log_store> nuraft_log = log_;
    if (o.log_store == "nuraft-memory") {
#ifdef SESHAT_HAVE_NURAFT_INMEM
      nuraft_log = ::nuraft::cs_new<::nuraft::inmem_log_store>();
#else
      die("--log-store nuraft-memory: NuRaft's in-memory store is not built in");
#endif
    } else if (o.log_store != "seshat") {
      die("unknown --log-store " + o.log_store);
    }
    std::fprintf(stderr, "nuraft_kv: start log first %llu last %llu applied %llu\n",
                 static_cast<unsigned long long>(nuraft_log->start_index()),
                 static_cast<unsigned long long>(nuraft_log->next_slot() - 1),
                 static_cast<unsigned long long>(sm_->last_commit_index()));

    auto config = ::nuraft::cs_new<::nuraft::cluster_config>();
    for (unsigned i = 1; i <= o.nodes; ++i)
      config->get_servers().push_back(::nuraft::cs_new<::nuraft::srv_config>(
          i, "127.0.0.1:" + std::to_string(o.base_port + i)));
    sn::state_mgr_options mo;
    mo.on_exit = [](int code) {
      std::fprintf(stderr, "nuraft_kv: NuRaft system_exit(%d)\n", code);
      std::_Exit(3);
    };
    mgr_ = ::nuraft::cs_new<mgr_type>(*store_, shard, static_cast<int>(o.id), nuraft_log, config, mo);

    ::nuraft::raft_params params;
    params.heart_beat_interval_ = static_cast<int>(o.heartbeat);
    params.election_timeout_lower_bound_ = static_cast<int>(o.election_timeout);
    params.election_timeout_upper_bound_ = static_cast<int>(o.election_timeout * 2);
    params.snapshot_distance_ = static_cast<int>(o.snapshot_distance);
    params.reserved_log_items_ = static_cast<int>(o.reserved_logs);
    params.client_req_timeout_ = 3000;
    params.return_method_ = ::nuraft::raft_params::async_handler;
    params.parallel_log_appending_ = o.parallel;
    ::nuraft::asio_service::options asio;
    asio.thread_pool_size_ = 4;
    ::nuraft::raft_server::init_options init;
    raft_ = launcher_.init(sm_, mgr_, nullptr, static_cast<int>(o.base_port + o.id), asio, params,
                           init);
    if (!raft_) die("NuRaft did not start (port " + std::to_string(o.base_port + o.id) + ")");
    log_->set_raft_server(raft_.get());
  }

  void finish() {
    log_->set_raft_server(nullptr);
    launcher_.shutdown(5);
    raft_.reset();
  }

  std::string handle(std::string_view line, const std::shared_ptr<conn>& c) {
    const std::size_t sp = line.find(' ');
    const std::string_view cmd = line.substr(0, sp);
    const std::string_view rest = sp == std::string_view::npos ? "" : line.substr(sp + 1);
    if (cmd == "put") {
      const std::size_t sp2 = rest.find(' ');
      if (sp2 == std::string_view::npos) return "ERR - usage: put <key> <value>";
      std::string key(rest.substr(0, sp2));
      std::string body = key + '\0' + std::string(rest.substr(sp2 + 1));
      auto result = raft_->append_entries({sn::to_buffer(body)});
      if (!result->get_accepted()) return "ERR " + key + " notleader " + std::to_string(raft_->get_leader());
      result->when_ready([c, key](::nuraft::cmd_result<sn::ptr<::nuraft::buffer>>& r,
                                  sn::ptr<std::exception>&) {
        c->send(r.get_result_code() == ::nuraft::cmd_result_code::OK
                    ? "OK " + key
                    : "ERR " + key + " code " + std::to_string(static_cast<int>(r.get_result_code())));
      });
      return {};
    }
    if (cmd == "get") {
      auto v = sm_->store().get(rest);
      return v.ok() ? "VAL " + v->data : "NONE";
    }
    if (cmd == "leader?") {
      const int leader = raft_->get_leader();
      return "LEADER " + std::to_string(leader < 0 ? 0 : leader) + " " +
             (raft_->is_leader() && leader == static_cast<int>(opt_.id) ? "leader" : "follower");
    }
    if (cmd == "dump") {
      std::string out;
      std::uint64_t n = 0;
      const std::uint64_t applied = sm_->last_commit_index();
      (void)sm_->store().for_each([&](std::string_view k, const seshat::stored_value& v) {
        out += "KV " + std::string(k) + " " + v.data + "\n";
        ++n;
      });
      return out + "END " + std::to_string(n) + " " + std::to_string(applied);
    }
    if (cmd == "stats") {
      auto log = mgr_->load_log_store();
      return "STATS " + std::to_string(sm_->installs()) + " 0 " + std::to_string(log->start_index()) +
             " " + std::to_string(log->next_slot() - 1) + " " +
             std::to_string(sm_->last_commit_index());
    }
    return "ERR - unknown command";
  }

 private:
  options opt_;
  std::unique_ptr<seshat::storage<Backend>> store_;
  sn::ptr<log_type> log_;
  sn::ptr<sm_type> sm_;
  sn::ptr<mgr_type> mgr_;
  ::nuraft::raft_launcher launcher_;
  sn::ptr<::nuraft::raft_server> raft_;
};

template <class Server>
void serve(Server& s, int listener) {
  while (!g_stop) {
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) continue;
    std::thread([&s, fd] {
      auto c = std::make_shared<conn>(fd);
      std::string in;
      char buf[4096];
      for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return;
        in.append(buf, static_cast<std::size_t>(n));
        for (std::size_t nl; (nl = in.find('\n')) != std::string::npos;) {
          std::string line = in.substr(0, nl);
          in.erase(0, nl + 1);
          if (!line.empty() && line.back() == '\r') line.pop_back();
          if (line == "quit") return;
          std::string reply = s.handle(line, c);
          if (!reply.empty()) c->send(std::move(reply));
        }
      }
    }).detach();
  }
}

template <class Backend, class Shard>
int run(const options& o, Shard shard, int listener) {
  server<Backend, Shard> s(o, shard);
  std::fprintf(stderr, "nuraft_kv: ready\n");
  std::thread([&] { serve(s, listener); }).detach();
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  s.finish();
  std::fflush(stderr);
  std::_Exit(0);  // connection threads may still run
}

template <class Backend>
int run_backend(const options& o, int listener) {
  if (o.shard == 0) return run<Backend>(o, seshat::system_shard{}, listener);
  return run<Backend>(o, seshat::data_shard{static_cast<seshat::shard_id>(o.shard)}, listener);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: nuraft_kv <id> <nodes> <base_port> <data_dir> [--backend B] [--shard N] "
                 "[--log-store seshat|nuraft-memory] [--parallel 0|1] [--snapshot-distance N] "
                 "[--reserved-logs N] [--election-timeout MS] [--heartbeat MS]\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  options o;
  o.id = parse_uint(argv[1], "id");
  o.nodes = parse_uint(argv[2], "nodes");
  o.base_port = parse_uint(argv[3], "base_port");
  o.dir = argv[4];
  for (int i = 5; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--backend") o.backend = argv[i + 1];
    else if (f == "--shard") o.shard = parse_uint(argv[i + 1], "shard");
    else if (f == "--log-store") o.log_store = argv[i + 1];
    else if (f == "--parallel") o.parallel = parse_uint(argv[i + 1], "parallel") != 0;
    else if (f == "--snapshot-distance") o.snapshot_distance = parse_uint(argv[i + 1], "distance");
    else if (f == "--reserved-logs") o.reserved_logs = parse_uint(argv[i + 1], "reserved logs");
    else if (f == "--election-timeout") o.election_timeout = parse_uint(argv[i + 1], "election timeout");
    else if (f == "--heartbeat") o.heartbeat = parse_uint(argv[i + 1], "heartbeat");
    else die("unknown option " + f);
  }
  if (o.id == 0 || o.id > o.nodes) die("id must be in 1..nodes");

  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(o.base_port + 100 + o.id));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 128) != 0)
    die("control port " + std::to_string(o.base_port + 100 + o.id) + ": " + std::strerror(errno));
  struct sigaction sa{};
  sa.sa_handler = [](int) { g_stop = true; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  if (o.backend == "memory") return run_backend<seshat::memory_backend>(o, listener);
#ifdef SESHAT_HAVE_ROCKSDB
  if (o.backend == "rocksdb") return run_backend<seshat::rocksdb_backend>(o, listener);
#endif
#ifdef SESHAT_HAVE_LEVELDB
  if (o.backend == "leveldb") return run_backend<seshat::leveldb_backend>(o, listener);
#endif
  die("backend not built: " + o.backend);
}
