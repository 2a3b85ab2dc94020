// An outside program on seshat::nuraft: opens the adapter's log store on a
// memory store, appends one NuRaft log entry synchronously and reads it
// back (which links the adapter's headers with the user's NuRaft).
// Usage: links_nuraft <scratch-dir>
#include <cstdio>
#include <filesystem>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/nuraft/log_store.hpp"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto store = seshat::storage<seshat::memory_backend>::open(std::filesystem::path(argv[1]) / "store");
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.status().to_string().c_str());
    return 1;
  }
  auto log = seshat::nuraft::seshat_log_store<seshat::memory_backend>::open(**store);
  if (!log.ok()) {
    std::fprintf(stderr, "log_store: %s\n", log.status().to_string().c_str());
    return 1;
  }
  auto data = ::nuraft::buffer::alloc(5);
  data->put_raw(reinterpret_cast<const ::nuraft::byte*>("hello"), 5);
  auto written = ::nuraft::cs_new<::nuraft::log_entry>(7, data);
  const auto at = (*log)->append(written);
  (*log)->flush();
  const auto entry = (*log)->entry_at(at);
  if (at != 1 || !entry || entry->get_term() != 7 || entry->get_buf().size() != 5) {
    std::fprintf(stderr, "log_store: entry %llu did not read back as written\n",
                 static_cast<unsigned long long>(at));
    return 1;
  }
  std::printf("links_nuraft: entry %llu of term 7 read back\n", static_cast<unsigned long long>(at));
  return 0;
}
