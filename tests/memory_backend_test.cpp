// What only the memory backend can show: a failure in the middle of a batch,
// a failed sync, and a power loss that drops what was not synced.
#include <doctest/doctest.h>

#include <string>

#include "support.hpp"

TEST_SUITE_BEGIN("memory backend");

using namespace seshat;
using seshat::test::open_store;
using seshat::test::scratch_dir;

TEST_CASE("a failure in the middle of a batch leaves nothing of it visible") {
  scratch_dir dir;
  auto s = open_store<memory_backend>(dir.store());
  REQUIRE(s->put(column_family::data_kv, "a", "old").ok());
  auto b = s->new_batch();
  b.put(column_family::data_kv, "a", "new");
  b.put(column_family::system_data, "b", "new");
  b.del_range(column_family::data_kv, "", "z");
  b.put(column_family::data_kv, "c", "new");
  s->backend().inject_write_failure(3);
  status failed = s->write(b);
  CHECK(failed.is(errc::io_error));
  CHECK(failed.message().find("after 3 of 4") != std::string::npos);
  CHECK(s->get(column_family::data_kv, "a").value() == "old");
  CHECK_FALSE(s->exists(column_family::system_data, "b").value());
  CHECK_FALSE(s->exists(column_family::data_kv, "c").value());
  // The injected failure is spent: the same batch now applies whole.
  REQUIRE(s->write(b).ok());
  CHECK(s->get(column_family::data_kv, "c").value() == "new");
}

TEST_CASE("a power loss keeps raft_state writes and what was synced, drops the rest") {
  scratch_dir dir;
  auto s = open_store<memory_backend>(dir.store());
  REQUIRE(s->append_log(column_family::system_raft_log, 1, "durable", write_options{true}).ok());
  REQUIRE(s->append_log(column_family::system_raft_log, 2, "buffered").ok());
  REQUIRE(s->put(column_family::data_kv, "unsynced", "v").ok());
  REQUIRE(s->put(column_family::system_raft_state, "vote", "term 2").ok());  // synced: earlier writes too
  REQUIRE(s->put(column_family::data_kv, "after-vote", "v").ok());
  REQUIRE(s->put(column_family::data_raft_state, "committed", "7").ok());
  REQUIRE(s->del(column_family::data_kv, "unsynced").ok());
  REQUIRE(s->put(column_family::system_data, "lost", "v").ok());
  REQUIRE(s->close().ok());

  auto reopened = open_store<memory_backend>(dir.store());
  reopened->backend().drop_unsynced();
  CHECK(reopened->get(column_family::system_raft_state, "vote").value() == "term 2");
  CHECK(reopened->get(column_family::data_raft_state, "committed").value() == "7");
  CHECK(reopened->get(column_family::data_kv, "after-vote").value() == "v");
  CHECK(reopened->read_log(column_family::system_raft_log, 1, 3).value() ==
        std::vector<std::string>{"durable", "buffered"});
  // Dropped: the delete after the last sync (so the key is back) and the put.
  CHECK(reopened->get(column_family::data_kv, "unsynced").value() == "v");
  CHECK_FALSE(reopened->exists(column_family::system_data, "lost").value());
}

TEST_CASE("sync_wal makes every earlier write survive a power loss") {
  scratch_dir dir;
  auto s = open_store<memory_backend>(dir.store());
  REQUIRE(s->put(column_family::data_kv, "a", "1").ok());
  REQUIRE(s->sync_wal().ok());
  REQUIRE(s->put(column_family::data_kv, "b", "2").ok());
  s->backend().drop_unsynced();
  CHECK(s->get(column_family::data_kv, "a").value() == "1");
  CHECK_FALSE(s->exists(column_family::data_kv, "b").value());
}

TEST_CASE(
    "after a failed sync every later write and sync fails with that error until the "
    "store is reopened, and a power loss drops what the sync did not make durable") {
  scratch_dir dir;
  auto s = open_store<memory_backend>(dir.store());
  memory_backend& b = s->backend();
  REQUIRE(b.put(column_family::data_kv, "a", "synced", write_options{true}).ok());
  REQUIRE(b.put(column_family::data_kv, "b", "unsynced", write_options{false}).ok());
  b.inject_sync_failure();
  const status failed =
      b.put(column_family::data_kv, "c", "synced, but the sync fails", write_options{true});
  CHECK(failed.is(errc::io_error));
  CHECK(failed.message().find("injected sync failure") != std::string::npos);

  const status again = s->sync_wal();
  CHECK(again.is(errc::io_error));
  CHECK_MESSAGE(again.message().find("refused, an earlier write failed (" + failed.message() +
                                     "); reopen the store") != std::string::npos,
                again.to_string());
  CHECK(b.put(column_family::data_kv, "d", "v", write_options{false}).is(errc::io_error));
  CHECK(b.put(column_family::data_kv, "e", "v", write_options{true}).is(errc::io_error));
  CHECK_FALSE(s->exists(column_family::data_kv, "d").value());  // refused: nothing written
  // Reads go on, and see what was written (in memory, not durable).
  CHECK(s->get(column_family::data_kv, "c").value() == "synced, but the sync fails");

  b.drop_unsynced();  // the power goes
  CHECK(s->get(column_family::data_kv, "a").value() == "synced");
  CHECK_FALSE(s->exists(column_family::data_kv, "b").value());
  CHECK_FALSE(s->exists(column_family::data_kv, "c").value());
  REQUIRE(s->close().ok());

  auto reopened = open_store<memory_backend>(dir.store());
  CHECK(reopened->backend().put(column_family::data_kv, "f", "v", write_options{true}).ok());
  CHECK(reopened->sync_wal().ok());
}

TEST_SUITE_END();  // "memory backend"
