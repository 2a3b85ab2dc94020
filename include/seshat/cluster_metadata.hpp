// seshat/cluster_metadata.hpp: the cluster's metadata (nodes, Raft timing,
// which nodes replicate which shard) and metadata_store, which keeps it in
// system_data.
//
// On disk, in system_data:
//   "membership"     -> envelope(membership payload)      membership.hpp
//   "shardmap"       -> envelope(boost(shard_map))
//   "node_config"    -> envelope(boost(node_config))
//   "cluster_config" -> envelope(boost(cluster_config))
//   "raft_config"    -> envelope(boost(raft_config))
// boost(T) is T's Boost.Serialization binary archive (no header), which
// records T's BOOST_CLASS_VERSION. Boost itself loads a newer class version
// without complaint, so each serialize() refuses a version above the one
// it knows; load_*() reports that as version-mismatch naming the key, the
// type and both versions. A newer envelope version is version-mismatch too;
// bytes that do not decode are corrupted-data.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <boost/serialization/map.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>
#include <boost/serialization/version.hpp>

#include <cstdint>
#include <exception>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "seshat/backend.hpp"
#include "seshat/column_family.hpp"
#include "seshat/detail/boost_archive.hpp"
#include "seshat/envelope.hpp"
#include "seshat/membership.hpp"
#include "seshat/shard.hpp"
#include "seshat/status.hpp"
#include "seshat/storage.hpp"

namespace seshat {


// The identity of this node. A plain value.
struct node_config {
  std::uint64_t node_id = 0;
  std::string address;   // where peers reach it, e.g. "10.0.0.1:7000"
  std::string data_dir;  // where its store lives
  template <class A>
  void serialize(A& a, unsigned version) {
    detail::refuse_newer_version<node_config, A>("node_config", version);
    a & node_id & address & data_dir;
  }
  friend bool operator==(const node_config&, const node_config&) = default;
};

// The cluster: its id and every node in it. A plain value.
struct cluster_config {
  std::string cluster_id;
  std::vector<node_config> nodes;
  template <class A>
  void serialize(A& a, unsigned version) {
    detail::refuse_newer_version<cluster_config, A>("cluster_config", version);
    a & cluster_id & nodes;
  }
  friend bool operator==(const cluster_config&, const cluster_config&) = default;
};

// Raft's timing and limits. A plain value.
// Invariant (validate()): 0 < heartbeat_interval_ms < election_timeout_ms,
// and max_append_entries, snapshot_max_entries, snapshot_max_log_bytes > 0.
struct raft_config {
  std::uint64_t election_timeout_ms = 1000;
  std::uint64_t heartbeat_interval_ms = 100;
  std::uint64_t max_append_entries = 1000;  // entries per AppendEntries message
  std::uint64_t snapshot_max_entries = 10'000;        // see snapshot_trigger.hpp
  std::uint64_t snapshot_max_log_bytes = 100ull << 20;

  // The first field that breaks the invariant, as invalid-config, or success.
  status validate() const {
    if (heartbeat_interval_ms == 0 || heartbeat_interval_ms >= election_timeout_ms)
      return status::invalid_config(
          "heartbeat_interval_ms is " + std::to_string(heartbeat_interval_ms) +
          ", allowed range is [1, election_timeout_ms) = [1, " +
          std::to_string(election_timeout_ms) + ")");
    if (max_append_entries == 0) return status::invalid_config("max_append_entries is 0");
    if (snapshot_max_entries == 0) return status::invalid_config("snapshot_max_entries is 0");
    if (snapshot_max_log_bytes == 0) return status::invalid_config("snapshot_max_log_bytes is 0");
    return {};
  }

  template <class A>
  void serialize(A& a, unsigned version) {
    detail::refuse_newer_version<raft_config, A>("raft_config", version);
    a & election_timeout_ms & heartbeat_interval_ms & max_append_entries &
        snapshot_max_entries & snapshot_max_log_bytes;
  }
  friend bool operator==(const raft_config&, const raft_config&) = default;
};

// Which nodes replicate each data shard. A plain value.
struct shard_map {
  std::map<shard_id, std::vector<std::uint64_t>> replicas;
  template <class A>
  void serialize(A& a, unsigned version) {
    detail::refuse_newer_version<shard_map, A>("shard_map", version);
    a & replicas;
  }
  friend bool operator==(const shard_map&, const shard_map&) = default;
};

}  // namespace seshat

BOOST_CLASS_VERSION(seshat::node_config, 1)
BOOST_CLASS_VERSION(seshat::cluster_config, 1)
BOOST_CLASS_VERSION(seshat::raft_config, 1)
BOOST_CLASS_VERSION(seshat::shard_map, 1)

namespace seshat {

// Loads and stores the cluster metadata in system_data. Each store_*()
// is one write (WAL, not synced); load_*() of a key never stored is
// not-found.
// Thread-safety: all members may be called from many threads at once.
// Ownership: refers to its storage, which must outlive it.
template <class B>
class metadata_store {
  static_assert(backend<B>,
                "seshat::metadata_store: B must model seshat::backend (see "
                "seshat/backend.hpp): rocksdb_backend, leveldb_backend or memory_backend.");

 public:
  static constexpr column_family k_family = column_family::system_data;

  explicit metadata_store(storage<B>& s) : storage_(&s) {}

  result<membership> load_membership() {
    auto stored = get("membership");
    if (!stored.ok()) return stored.status();
    return membership::decode(*stored, k_family, "membership");
  }
  status store_membership(const membership& m) {
    return storage_->put(k_family, "membership", m.encode());
  }

  result<shard_map> load_shard_map() { return load<shard_map>("shardmap"); }
  status store_shard_map(const shard_map& v) { return store("shardmap", v); }

  result<node_config> load_node_config() { return load<node_config>("node_config"); }
  status store_node_config(const node_config& v) { return store("node_config", v); }

  result<cluster_config> load_cluster_config() { return load<cluster_config>("cluster_config"); }
  status store_cluster_config(const cluster_config& v) { return store("cluster_config", v); }

  result<raft_config> load_raft_config() { return load<raft_config>("raft_config"); }
  // Refuses a config that fails raft_config::validate(); nothing is written.
  status store_raft_config(const raft_config& v) {
    SESHAT_RETURN_IF_ERROR(v.validate());
    return store("raft_config", v);
  }

 private:
  result<std::string> get(std::string_view key) {
    auto stored = storage_->get(k_family, key);
    if (stored.status().is(errc::not_found))
      return status::not_found(std::string(name_of(k_family)) + " key '" + std::string(key) +
                               "' was never stored");
    return stored;
  }

  template <class T>
  status store(std::string_view key, const T& value) {
    std::string out;
    const std::size_t at = envelope::begin(out);
    detail::boost_save(value, out);
    envelope::seal(out, at);
    return storage_->put(k_family, key, out);
  }

  template <class T>
  result<T> load(std::string_view key) {
    auto stored = get(key);
    if (!stored.ok()) return stored.status();
    auto payload = envelope::open(*stored, k_family, key);
    if (!payload.ok()) return payload.status();
    T value{};
    status s = detail::boost_load(*payload, value);
    if (!s.ok()) return s.with_context(std::string(name_of(k_family)) + " key '" + std::string(key) + "': ");
    return value;
  }

  storage<B>* storage_;
};

}  // namespace seshat
