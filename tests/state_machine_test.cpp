// The state machine side: state_machine_store, stored_value, membership,
// metadata_store and snapshot_trigger, run against every backend.
#include <doctest/doctest.h>

#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "seshat/cluster_metadata.hpp"
#include "seshat/membership.hpp"
#include "seshat/snapshot_trigger.hpp"
#include "seshat/state_machine_store.hpp"
#include "seshat/stored_value.hpp"
#include "kv_entries.hpp"
#include "support.hpp"

TEST_SUITE_BEGIN("state machine");

using namespace seshat;
using seshat::test::dump;
using seshat::test::kv_apply;
using seshat::test::kv_entry;
using seshat::test::puts;
using seshat::test::open_store;
using seshat::test::scratch_dir;

namespace {

template <class SM>
std::map<std::string, std::string> contents(const SM& sm, std::uint64_t now_ms = 0) {
  std::map<std::string, std::string> out;
  REQUIRE(sm.for_each([&](std::string_view k, const stored_value& v) { out[std::string(k)] = v.data; },
                      now_ms)
              .ok());
  return out;
}

bool mentions(const status& s, std::string_view text) {
  return s.message().find(text) != std::string::npos;
}

template <class B>
using system_sm = state_machine_store<kv_entry, B>;
template <class B>
using data_sm = state_machine_store<kv_entry, B, data_shard>;

// node_config as a newer seshat would write it.
struct future_node_config {
  std::uint64_t node_id = 7;
  std::string address = "10.0.0.7:7000", data_dir = "/var/lib/seshat";
  template <class A>
  void serialize(A& a, unsigned) {
    a & node_id & address & data_dir;
  }
};

}  // namespace

BOOST_CLASS_VERSION(future_node_config, 2)

TEST_CASE_TEMPLATE_DEFINE("state machine", B, state_machine) {
  scratch_dir dir;

  SUBCASE("apply stores the entries' writes and the last entry's log id together") {
    auto s = open_store<B>(dir.store());
    auto sm = system_sm<B>::open(*s).value();
    CHECK_FALSE(sm.applied_state().value().last_applied.has_value());
    REQUIRE(sm.apply(puts(1, 1, 3), kv_apply).ok());
    CHECK(sm.applied_state().value().last_applied == log_id{1, 3});
    const stored_value v = sm.get("k2").value();
    CHECK(v == stored_value{2, "v2", 2000, std::nullopt});
    std::vector<kv_entry> del{{2, 4, "k1", ""}};
    REQUIRE(sm.apply(del, kv_apply).ok());
    CHECK(sm.get("k1").status().is(errc::not_found));
    CHECK(contents(sm) == std::map<std::string, std::string>{{"k2", "v2"}, {"k3", "v3"}});
    CHECK(sm.applied_state().value().last_applied == log_id{2, 4});
  }

  SUBCASE("the applied state and the data survive reopen") {
    {
      auto s = open_store<B>(dir.store());
      auto sm = system_sm<B>::open(*s).value();
      REQUIRE(sm.apply(puts(3, 10, 5), kv_apply).ok());
      REQUIRE(s->close().ok());
    }
    auto s = open_store<B>(dir.store());
    auto sm = system_sm<B>::open(*s).value();
    CHECK(sm.applied_state().value().last_applied == log_id{3, 14});
    CHECK(sm.get("k12").value().data == "v12");
    CHECK(sm.apply(puts(3, 15, 1), kv_apply).ok());
  }

  SUBCASE("apply with a gap in the applied index is refused and changes nothing") {
    auto s = open_store<B>(dir.store());
    auto sm = system_sm<B>::open(*s).value();
    REQUIRE(sm.apply(puts(1, 1, 5), kv_apply).ok());
    const auto before = dump(*s);
    int calls = 0;
    auto counting = [&](const kv_entry& e, state_machine_batch& b) { ++calls; kv_apply(e, b); };

    status gap = sm.apply(puts(1, 7, 2), counting);
    CHECK(gap.is(errc::invalid_log_index));
    CHECK(mentions(gap, "index 7"));
    CHECK(mentions(gap, "expected 6"));
    CHECK(sm.apply(puts(1, 5, 2), counting).is(errc::invalid_log_index));  // overlap
    std::vector<kv_entry> holey = puts(1, 6, 3);
    holey[2].index = 9;
    status inner = sm.apply(holey, counting);
    CHECK(inner.is(errc::invalid_log_index));
    CHECK(mentions(inner, "index 9"));
    CHECK(mentions(inner, "expected 8"));

    CHECK(calls == 0);
    CHECK(dump(*s) == before);
    CHECK(sm.applied_state().value().last_applied == log_id{1, 5});
    CHECK(sm.apply(puts(1, 6, 1), counting).ok());
  }

  SUBCASE("a store that never applied accepts any first index; no entries is a no-op") {
    auto s = open_store<B>(dir.store());
    auto sm = system_sm<B>::open(*s).value();
    REQUIRE(sm.apply(std::span<const kv_entry>(), kv_apply).ok());
    CHECK(dump(*s).empty());
    REQUIRE(sm.apply(puts(4, 100, 2), kv_apply).ok());
    CHECK(sm.applied_state().value().last_applied == log_id{4, 101});
  }

  SUBCASE("an exception from the apply function stores nothing") {
    auto s = open_store<B>(dir.store());
    auto sm = system_sm<B>::open(*s).value();
    REQUIRE(sm.apply(puts(1, 1, 1), kv_apply).ok());
    const auto before = dump(*s);
    auto throws_at_3 = [](const kv_entry& e, state_machine_batch& b) {
      kv_apply(e, b);
      if (e.index == 3) throw std::runtime_error("bad command");
    };
    status failed = sm.apply(puts(1, 2, 3), throws_at_3);
    CHECK_FALSE(failed.ok());
    CHECK(mentions(failed, "bad command"));
    CHECK(mentions(failed, "index 3"));
    CHECK(dump(*s) == before);
    CHECK(sm.applied_state().value().last_applied == log_id{1, 1});
    CHECK(sm.apply(puts(1, 2, 1), kv_apply).ok());
  }

  SUBCASE("the batch reads this apply's earlier writes before the store") {
    auto s = open_store<B>(dir.store());
    auto sm = system_sm<B>::open(*s).value();
    REQUIRE(sm.apply(std::vector<kv_entry>{{1, 1, "counter", "1"}}, kv_apply).ok());
    auto increment = [](const kv_entry& e, state_machine_batch& b) {
      auto old = b.get(e.key);
      REQUIRE(old.ok());
      b.put(e.key, std::to_string(std::stoi(old->data) + 1), old->version + 1, 0);
      CHECK(b.entry_id().index == e.index);
    };
    REQUIRE(sm.apply(std::vector<kv_entry>{{1, 2, "counter", ""}, {1, 3, "counter", ""}},
                     increment)
                .ok());
    const stored_value v = sm.get("counter").value();
    CHECK(v.data == "3");
    CHECK(v.version == 3);
    auto del_then_get = [](const kv_entry& e, state_machine_batch& b) {
      b.del(e.key);
      CHECK(b.get(e.key).status().is(errc::not_found));
    };
    REQUIRE(sm.apply(std::vector<kv_entry>{{1, 4, "counter", ""}}, del_then_get).ok());
    CHECK(sm.get("counter").status().is(errc::not_found));
  }

  SUBCASE("two data shards never see each other's keys or applied state") {
    auto s = open_store<B>(dir.store());
    auto one = data_sm<B>::open(*s, data_shard{1}).value();
    auto two = data_sm<B>::open(*s, data_shard{2}).value();
    auto sys = system_sm<B>::open(*s).value();
    REQUIRE(one.apply(puts(1, 1, 3, "one-"), kv_apply).ok());
    REQUIRE(two.apply(puts(5, 40, 1, "two-"), kv_apply).ok());
    REQUIRE(sys.apply(std::vector<kv_entry>{{2, 7, "k1", "sys"}}, kv_apply).ok());

    CHECK(one.get("k1").value().data == "one-1");
    CHECK(two.get("k1").status().is(errc::not_found));
    CHECK(sys.get("k1").value().data == "sys");
    CHECK(contents(one) ==
          std::map<std::string, std::string>{{"k1", "one-1"}, {"k2", "one-2"}, {"k3", "one-3"}});
    CHECK(contents(two) == std::map<std::string, std::string>{{"k40", "two-40"}});
    CHECK(contents(sys) == std::map<std::string, std::string>{{"k1", "sys"}});
    CHECK(one.applied_state().value().last_applied == log_id{1, 3});
    CHECK(two.applied_state().value().last_applied == log_id{5, 40});
    CHECK(sys.applied_state().value().last_applied == log_id{2, 7});
    // Each continues its own applied index, not another's.
    CHECK(two.apply(puts(5, 4, 1), kv_apply).is(errc::invalid_log_index));
    CHECK(two.apply(puts(5, 41, 1), kv_apply).ok());
    CHECK(one.applied_state().value().last_applied == log_id{1, 3});
  }

  SUBCASE("a data shard with id 0 is refused") {
    auto s = open_store<B>(dir.store());
    auto refused = data_sm<B>::open(*s, data_shard{0});
    CHECK(refused.status().is(errc::invalid_argument));
    CHECK(dump(*s).empty());
  }

  SUBCASE("a value with a ttl round-trips and is not-found once expired") {
    auto s = open_store<B>(dir.store());
    auto sm = system_sm<B>::open(*s).value();
    const stored_value session{9, std::string("tok\0en", 6), 5000, 250};
    auto put_session = [&](const kv_entry&, state_machine_batch& b) { b.put("session", session); };
    REQUIRE(sm.apply(std::vector<kv_entry>{{1, 1, "", ""}}, put_session).ok());
    CHECK(sm.get("session", 5000).value() == session);
    CHECK(sm.get("session", 5249).value() == session);
    auto expired = sm.get("session", 5250);
    CHECK(expired.status().is(errc::not_found));
    CHECK(mentions(expired.status(), "expired"));
    CHECK(contents(sm, 5249).size() == 1);
    CHECK(contents(sm, 5250).empty());
    CHECK(sm.get("session", 4000).ok());  // a clock behind the write expires nothing
  }

  SUBCASE("for_each walks the group's keys in order and stops when f returns false") {
    auto s = open_store<B>(dir.store());
    auto sm = system_sm<B>::open(*s).value();
    std::vector<kv_entry> entries;
    for (const char* k : {"b", "a", "d", "c"}) entries.push_back({1, entries.size() + 1, k, k});
    REQUIRE(sm.apply(entries, kv_apply).ok());
    std::vector<std::string> seen;
    REQUIRE(sm.for_each([&](std::string_view k, const stored_value&) {
                seen.emplace_back(k);
                return k != "c";
              })
                .ok());
    CHECK(seen == std::vector<std::string>{"a", "b", "c"});
  }

  SUBCASE("a membership set by an entry is applied with it and survives reopen") {
    const membership three{log_id{2, 5}, {1, 2, 3}, {4}};
    {
      auto s = open_store<B>(dir.store());
      auto sm = data_sm<B>::open(*s, data_shard{7}).value();
      CHECK(sm.applied_state().value().membership == membership{});
      auto change = [](const kv_entry& e, state_machine_batch& b) {
        if (e.key == "members") b.set_membership({std::nullopt, {1, 2, 3}, {4}});
        else kv_apply(e, b);
      };
      REQUIRE(sm.apply(std::vector<kv_entry>{{2, 4, "x", "1"}, {2, 5, "members", ""},
                                             {2, 6, "y", "2"}},
                       change)
                  .ok());
      CHECK(sm.applied_state().value() == applied_state{log_id{2, 6}, three});
      REQUIRE(sm.apply(puts(2, 7, 1), kv_apply).ok());  // no change: kept
      CHECK(sm.applied_state().value().membership == three);
    }
    auto s = open_store<B>(dir.store());
    auto sm = data_sm<B>::open(*s, data_shard{7}).value();
    CHECK(sm.applied_state().value() == applied_state{log_id{2, 7}, three});
  }

  SUBCASE("the data key is the documented grammar, for both key formats") {
    auto s = open_store<B>(dir.store());
    using decimal_sm = state_machine_store<kv_entry, B, data_shard, decimal_key_format>;
    auto bin = data_sm<B>::open(*s, data_shard{0x0102}).value();
    auto dec = decimal_sm::open(*s, data_shard{3}).value();
    auto sys = system_sm<B>::open(*s).value();
    CHECK(bin.data_key("k") == std::string("\0\0\0\0\0\0\x01\x02@kvk", 12));
    CHECK(sys.data_key("k") == std::string("\0\0\0\0\0\0\0\0@kvk", 12));
    CHECK(dec.data_key("k") == "shard:00000000000000000003/kvk");
    REQUIRE(dec.apply(puts(1, 1, 1), kv_apply).ok());
    CHECK(stored_value::decode(s->get(column_family::data_kv, dec.data_key("k1")).value(),
                               column_family::data_kv, "k1")
              .value()
              .data == "v1");
    CHECK(s->exists(column_family::data_raft_state,
                    "shard:00000000000000000003/applied").value());
    CHECK(contents(dec) == std::map<std::string, std::string>{{"k1", "v1"}});
  }

  SUBCASE("corrupted bytes in a stored value are corrupted-data naming family and key") {
    auto s = open_store<B>(dir.store());
    auto sm = data_sm<B>::open(*s, data_shard{4}).value();
    REQUIRE(sm.apply(puts(1, 1, 1), kv_apply).ok());
    const std::string good = s->get(column_family::data_kv, sm.data_key("k1")).value();
    const std::string bad_payload = envelope::wrap("not a stored value");
    for (const std::string& bytes :
         {std::string("garbage"), std::string(), good.substr(0, good.size() - 1),
          good.substr(0, 3), bad_payload}) {
      CAPTURE(bytes.size());
      REQUIRE(s->put(column_family::data_kv, sm.data_key("k1"), bytes).ok());
      auto got = sm.get("k1");
      CHECK(got.status().is(errc::corrupted_data));
      CHECK(mentions(got.status(), "data_kv"));
      CHECK(mentions(got.status(), "k1"));
      status walked = sm.for_each([](std::string_view, const stored_value&) {});
      CHECK(walked.is(errc::corrupted_data));
    }
    std::string flipped = good;
    flipped.back() ^= 0x20;
    REQUIRE(s->put(column_family::data_kv, sm.data_key("k1"), flipped).ok());
    CHECK(mentions(sm.get("k1").status(), "checksum"));
  }

  SUBCASE("a corrupted applied state fails open with corrupted-data") {
    auto s = open_store<B>(dir.store());
    REQUIRE(s->put(column_family::system_raft_state, "@applied", envelope::wrap("short")).ok());
    auto opened = system_sm<B>::open(*s);
    CHECK(opened.status().is(errc::corrupted_data));
    CHECK(mentions(opened.status(), "system_raft_state"));
    CHECK(mentions(opened.status(), "applied"));
  }

  SUBCASE("a value written by a newer envelope version is version-mismatch") {
    auto s = open_store<B>(dir.store());
    auto sm = system_sm<B>::open(*s).value();
    REQUIRE(sm.apply(puts(1, 1, 1), kv_apply).ok());
    std::string newer = s->get(column_family::data_kv, sm.data_key("k1")).value();
    newer = seshat::test::with_envelope_version(newer, 2);
    REQUIRE(s->put(column_family::data_kv, sm.data_key("k1"), newer).ok());
    auto got = sm.get("k1");
    CHECK(got.status().is(errc::version_mismatch));
    CHECK(mentions(got.status(), "data_kv"));

    std::string membership_v2 = membership{}.encode();
    membership_v2 = seshat::test::with_envelope_version(membership_v2, 2);
    REQUIRE(s->put(column_family::system_raft_state, "@membership", membership_v2).ok());
    { auto closed = std::move(sm); }  // one state machine per group
    CHECK(system_sm<B>::open(*s).status().is(errc::version_mismatch));
  }

  SUBCASE("metadata_store stores and loads each type, across reopen") {
    const membership members{log_id{3, 9}, {1, 2, 3}, {}};
    const shard_map shards{{{1, {1, 2, 3}}, {2, {2, 3, 4}}}};
    const node_config node{2, "10.0.0.2:7000", "/data/n2"};
    const cluster_config cluster{"prod-eu", {{1, "10.0.0.1:7000", "/d"}, node}};
    const raft_config raft{1500, 150, 64, 5000, 1ull << 26};
    {
      auto s = open_store<B>(dir.store());
      metadata_store<B> meta(*s);
      CHECK(meta.load_membership().status().is(errc::not_found));
      CHECK(meta.load_shard_map().status().is(errc::not_found));
      CHECK(meta.load_node_config().status().is(errc::not_found));
      CHECK(meta.load_cluster_config().status().is(errc::not_found));
      auto missing = meta.load_raft_config();
      CHECK(missing.status().is(errc::not_found));
      CHECK(mentions(missing.status(), "raft_config"));
      REQUIRE(meta.store_membership(members).ok());
      REQUIRE(meta.store_shard_map(shards).ok());
      REQUIRE(meta.store_node_config(node).ok());
      REQUIRE(meta.store_cluster_config(cluster).ok());
      REQUIRE(meta.store_raft_config(raft).ok());
      for (const char* key : {"membership", "shardmap", "node_config", "cluster_config",
                              "raft_config"})
        CHECK(s->exists(column_family::system_data, key).value());
    }
    auto s = open_store<B>(dir.store());
    metadata_store<B> meta(*s);
    CHECK(meta.load_membership().value() == members);
    CHECK(meta.load_shard_map().value() == shards);
    CHECK(meta.load_node_config().value() == node);
    CHECK(meta.load_cluster_config().value() == cluster);
    CHECK(meta.load_raft_config().value() == raft);
  }

  SUBCASE("metadata_store refuses an invalid raft_config and writes nothing") {
    auto s = open_store<B>(dir.store());
    metadata_store<B> meta(*s);
    raft_config bad;
    bad.heartbeat_interval_ms = bad.election_timeout_ms;
    status refused = meta.store_raft_config(bad);
    CHECK(refused.is(errc::invalid_config));
    CHECK(mentions(refused, "heartbeat_interval_ms"));
    CHECK(dump(*s).empty());
  }

  SUBCASE("metadata written by a newer seshat is version-mismatch; garbage is corrupted-data") {
    auto s = open_store<B>(dir.store());
    metadata_store<B> meta(*s);
    std::string newer_class;
    const std::size_t at = envelope::begin(newer_class);
    detail::boost_save(future_node_config{}, newer_class);
    envelope::seal(newer_class, at);
    REQUIRE(s->put(column_family::system_data, "node_config", newer_class).ok());
    auto refused = meta.load_node_config();
    CHECK(refused.status().is(errc::version_mismatch));
    CHECK(mentions(refused.status(), "node_config"));
    CHECK(mentions(refused.status(), "class version 2"));

    REQUIRE(meta.store_cluster_config({"c", {}}).ok());
    std::string newer_envelope = s->get(column_family::system_data, "cluster_config").value();
    newer_envelope = seshat::test::with_envelope_version(newer_envelope, 2);
    REQUIRE(s->put(column_family::system_data, "cluster_config", newer_envelope).ok());
    CHECK(meta.load_cluster_config().status().is(errc::version_mismatch));

    REQUIRE(s->put(column_family::system_data, "raft_config", envelope::wrap("\x01\x02")).ok());
    auto garbage = meta.load_raft_config();
    CHECK(garbage.status().is(errc::corrupted_data));
    CHECK(mentions(garbage.status(), "system_data key 'raft_config'"));
    REQUIRE(s->put(column_family::system_data, "membership", "junk").ok());
    CHECK(meta.load_membership().status().is(errc::corrupted_data));
  }
}

TEST_CASE_TEMPLATE_INVOKE(state_machine, SESHAT_ALL_BACKENDS);

TEST_CASE("a batch that fails part way stores nothing: no value, applied id unchanged") {
  scratch_dir dir;
  auto s = open_store<memory_backend>(dir.store());
  {
    auto sm = system_sm<memory_backend>::open(*s).value();
    REQUIRE(sm.apply(puts(1, 1, 2), kv_apply).ok());
    const auto before = dump(*s);
    // 3 puts, the applied id and the membership: 5 operations; fail after each.
    auto change = [](const kv_entry& e, state_machine_batch& b) {
      kv_apply(e, b);
      if (e.index == 4) b.set_membership({std::nullopt, {1}, {}});
    };
    for (std::size_t applied = 0; applied < 5; ++applied) {
      CAPTURE(applied);
      s->backend().inject_write_failure(applied);
      CHECK(sm.apply(puts(2, 3, 3, "new-"), change).is(errc::io_error));
      CHECK(dump(*s) == before);
      CHECK(sm.applied_state().value() == applied_state{log_id{1, 2}, {}});
      CHECK(sm.get("k3").status().is(errc::not_found));
    }
  }
  auto sm = system_sm<memory_backend>::open(*s).value();
  CHECK(sm.applied_state().value().last_applied == log_id{1, 2});
  REQUIRE(sm.apply(puts(2, 3, 3, "new-"), kv_apply).ok());
  CHECK(sm.get("k5").value().data == "new-5");
}

TEST_CASE("stored_value and membership decode every truncation as corrupted data") {
  const std::string value = stored_value{1, "data", 2, 3}.encode();
  const std::string members = membership{log_id{1, 2}, {1, 2}, {3}}.encode();
  CHECK(stored_value::decode(value, column_family::data_kv, "k").value() ==
        stored_value{1, "data", 2, 3});
  CHECK(membership::decode(members, column_family::system_data, "m").value() ==
        membership{log_id{1, 2}, {1, 2}, {3}});
  for (std::size_t n = 0; n < value.size(); ++n) {
    CAPTURE(n);
    auto cut = stored_value::decode(value.substr(0, n), column_family::data_kv, "k");
    CHECK(cut.status().is(errc::corrupted_data));
    CHECK(mentions(cut.status(), "data_kv key 'k'"));
  }
  for (std::size_t n = 0; n < members.size(); ++n) {
    CAPTURE(n);
    auto cut = membership::decode(members.substr(0, n), column_family::system_data, "m");
    CHECK(cut.status().is(errc::corrupted_data));
  }
  // A valid envelope around a count far larger than the payload.
  std::string huge;
  detail::put_u8(huge, 0);
  detail::put_u64(huge, ~0ull);
  CHECK(membership::decode(envelope::wrap(huge), column_family::system_data, "m")
            .status()
            .is(errc::corrupted_data));
  std::string bad_flags;
  detail::put_u8(bad_flags, 4);
  detail::put_u64(bad_flags, 0);
  detail::put_u64(bad_flags, 0);
  CHECK(membership::decode(envelope::wrap(bad_flags), column_family::system_data, "m")
            .status()
            .is(errc::corrupted_data));
}

TEST_CASE("stored_value expires at created_at_ms + ttl_ms, never without a ttl") {
  const stored_value forever{1, "x", 100, std::nullopt};
  const stored_value brief{1, "x", 100, 50};
  CHECK_FALSE(forever.expired(~0ull));
  CHECK_FALSE(brief.expired(149));
  CHECK(brief.expired(150));
  CHECK_FALSE(brief.expired(99));
  CHECK(stored_value{1, "x", ~0ull - 1, ~0ull}.expired(~0ull) == false);  // no overflow
}

TEST_CASE("snapshot_trigger is due when either limit is reached, and 0 turns a limit off") {
  static_assert(snapshot_trigger_policy<snapshot_trigger>);
  const snapshot_trigger t{100, 1000};
  CHECK_FALSE(t.due(0, 0));
  CHECK_FALSE(t.due(99, 999));
  CHECK(t.due(100, 0));
  CHECK(t.due(0, 1000));
  CHECK(t.due(500, 5000));
  CHECK_FALSE(snapshot_trigger{0, 1000}.due(1'000'000, 999));
  CHECK_FALSE(snapshot_trigger{0, 0}.due(~0ull, ~0ull));
  const snapshot_trigger defaults;
  CHECK_FALSE(defaults.due(9'999, (100ull << 20) - 1));
  CHECK(defaults.due(10'000, 0));
}

TEST_SUITE_END();  // "state machine"
